-- The history of the RL switch in time order: the flag in force at time t is the one of
-- the latest row with ts <= t (none: enabled; SPEC C).
SELECT ts, enable_rl FROM policy ORDER BY ts;
