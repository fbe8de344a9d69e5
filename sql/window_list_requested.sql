-- Windows asked for by the caller become the `windows` that features_windows.sql reads.
CREATE OR REPLACE TEMP TABLE windows AS SELECT lo_idx, hi_idx FROM requested_windows;
