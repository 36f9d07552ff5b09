from agenthq_common.membership import membership_metadata
from agenthq_common.migrations import run_env
from agenthq_common.plumbing import plumbing_metadata
from agenthq_gateway.models import Base
from agenthq_gateway.settings import GatewaySettings

run_env(GatewaySettings().database_url, [Base.metadata, plumbing_metadata, membership_metadata])
