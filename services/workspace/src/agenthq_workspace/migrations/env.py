from agenthq_common.membership import membership_metadata
from agenthq_common.migrations import run_env
from agenthq_common.plumbing import plumbing_metadata
from agenthq_workspace.models import Base
from agenthq_workspace.settings import WorkspaceSettings

run_env(WorkspaceSettings().database_url, [Base.metadata, plumbing_metadata, membership_metadata])
