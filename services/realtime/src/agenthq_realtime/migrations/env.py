from agenthq_common.membership import membership_metadata
from agenthq_common.migrations import run_env
from agenthq_common.plumbing import plumbing_metadata
from agenthq_realtime.models import Base
from agenthq_realtime.settings import RealtimeSettings

run_env(RealtimeSettings().database_url, [Base.metadata, plumbing_metadata, membership_metadata])
