"""The queue of deploy/dagster.yaml, with a fault point where a sensor's run was submitted.

Dagster's sensor daemon submits every run a tick requests (each carries its run key) and only
then stores the tick's cursor. The faults suite kills the daemon between the two, at
`coordinator.run_submitted`, and checks that the next tick's repeat of the same requests starts
nothing twice.
"""

from dagster._core.run_coordinator import QueuedRunCoordinator

from collab_pipelines import fault_points


class FaultPointQueuedRunCoordinator(QueuedRunCoordinator):
    def submit_run(self, context):
        run = super().submit_run(context)
        fault_points.reached("coordinator.run_submitted")
        return run
