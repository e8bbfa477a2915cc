"""Pure orchestration logic (no I/O): given a job document, decide what happens next."""
