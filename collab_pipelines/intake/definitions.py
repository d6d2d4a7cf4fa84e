import dagster as dg

from collab_pipelines.intake.assets import build_intake_assets
from collab_pipelines.intake.landing import LocalLandingZone
from collab_pipelines.intake.sensors import build_upload_sensor


def build_defs() -> dg.Definitions:
    """Everything pattern 5 defines. The warehouse resource comes from the root."""
    return dg.Definitions(
        assets=build_intake_assets(),
        sensors=[build_upload_sensor()],
        # The local landing zone is the SFTP server's data root; production may point this at
        # SftpLandingZone (see docs/intake.md).
        resources={"landing_zone": LocalLandingZone()},
    )
