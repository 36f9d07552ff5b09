from agenthq_common.migrations import run_env
from agenthq_common.plumbing import plumbing_metadata
from agenthq_team.models import Base
from agenthq_team.settings import TeamSettings

run_env(TeamSettings().database_url, [Base.metadata, plumbing_metadata])
