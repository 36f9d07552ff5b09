from agenthq_common.membership import membership_metadata
from agenthq_common.migrations import run_env
from agenthq_common.plumbing import plumbing_metadata
from agenthq_usage.models import metadata
from agenthq_usage.settings import UsageSettings

run_env(UsageSettings().database_url, [metadata, plumbing_metadata, membership_metadata])
