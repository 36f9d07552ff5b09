-- Run once by the postgres image on an empty data directory
-- (mounted into /docker-entrypoint-initdb.d by docker-compose.yml).
-- One database per service; each service's migrations own its schema:
--   alembic -c services/<service>/alembic.ini upgrade head
CREATE DATABASE agenthq_team;
CREATE DATABASE agenthq_workspace;
CREATE DATABASE agenthq_activity;
CREATE DATABASE agenthq_usage;
CREATE DATABASE agenthq_gateway;
CREATE DATABASE agenthq_realtime;
