"""Which failed runs the run-retry daemon may launch again: one tag, shared by every pattern.

`deploy/dagster.yaml` retries a failed run once. In Dagster 1.13 the daemon decides from the
run's tags, not from the exception: `dg.Failure(allow_retries=False)` only stops an op's own
retry policy, and a run whose step failed is retried unless its tag
`dagster/retry_on_asset_or_op_failure` is "false". With the tag, a run whose worker was lost
(a killed pod, a restarted container: not a step failure) is still retried.

So every run whose step failure will repeat (an evaluation of a broken commit, a report of a
broken template or of missing data, an upload with nothing left to ingest) carries
`NO_RETRY_OF_STEP_FAILURES`, on its job (launchpad, CLI, backfills) and on the sensor's
requests. The exports do not: their usual failure is a lost database connection, which a retry
fixes. No Dagster import here: the string is Dagster's, checked by a test.
"""

RETRY_ON_STEP_FAILURE_TAG = "dagster/retry_on_asset_or_op_failure"
NO_RETRY_OF_STEP_FAILURES = {RETRY_ON_STEP_FAILURE_TAG: "false"}
