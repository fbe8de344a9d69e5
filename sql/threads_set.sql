-- Sets the number of threads of this connection; {threads} is an integer inlined by
-- rlv2.history (SET takes no parameters).
SET threads TO {threads};
