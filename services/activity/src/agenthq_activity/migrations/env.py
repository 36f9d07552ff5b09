from agenthq_activity.models import metadata
from agenthq_activity.settings import ActivitySettings
from agenthq_common.membership import membership_metadata
from agenthq_common.migrations import run_env
from agenthq_common.plumbing import plumbing_metadata

run_env(ActivitySettings().database_url, [metadata, plumbing_metadata, membership_metadata])
