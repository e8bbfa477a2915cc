"""Long-form video: a list of prompts -> one daisy-chained segment per prompt -> one MP4.

    plan.py        the workflow as pure functions: the job document in, a decision out
    job.py         the job document: request and stored-job models, enqueueing a step
    callables.py   `triggerlongformvideojob`, `replaylongformvideojob`
    step.py        `longformstep`: one step per task, settled by the task attempt
    claim.py       a step's claim: begin, owned writes, the heartbeat
    work.py        a step's I/O: generate a segment, or stitch them

Orchestration without I/O (plan.py), the I/O beside it, in the spirit of Temporal's
workflow/activity split. The design: docs/longform.md.
"""
