-- How many equities the live system recorded (the optional account table): none means the
-- account model (SPEC C) gives the equity. Run only where the table exists (rlv2.history).
SELECT count(*) AS recorded FROM account;
