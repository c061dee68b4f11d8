-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d/), as the
-- superuser POSTGRES_USER (`pmf`): one database per service, so that Prefect's and MLflow's Alembic
-- histories (both in a table named alembic_version) never meet.
--   prefect: the Prefect server (its migrations need the pg_trgm extension)
--   mlflow:  the MLflow tracking store and model registry, and the basic-auth users
--            (MLflow keeps those in alembic_version_auth: no clash with the tracking store)
--   pmf:     pmf's own tables (PMF_DATABASE_URL), and team data sources
CREATE DATABASE prefect;
CREATE DATABASE mlflow;
CREATE DATABASE pmf;

\connect prefect
CREATE EXTENSION IF NOT EXISTS pg_trgm;
