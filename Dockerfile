# The project's Airflow image: the official slim Airflow 3.3.2 image (Airflow core, none of the
# ~30 providers of the full image, whose pins our lock could break) plus the production
# requirements (runtime requirements and the celery, postgres and redis providers that the
# compose stack's CeleryExecutor needs), installed with the production lock
# constraints-production.txt (resolved from the development lock constraints.txt, see its header;
# `make prodlock` regenerates it), and the carewatch package. `pip check` fails the build if the
# installed set is inconsistent.
FROM apache/airflow:slim-3.3.2-python3.11

COPY --chown=airflow:root requirements.txt requirements-production.txt constraints-production.txt /opt/carewatch/
RUN pip install --no-cache-dir -r /opt/carewatch/requirements-production.txt -c /opt/carewatch/constraints-production.txt \
    && pip check

COPY --chown=airflow:root pyproject.toml README.md /opt/carewatch/
COPY --chown=airflow:root src /opt/carewatch/src
RUN pip install --no-cache-dir --no-deps /opt/carewatch && pip check
# the data volume (compose: carewatch-var) is mounted here; a new named volume takes this
# directory's owner and mode, so the workers (uid AIRFLOW_UID, group 0) can write the raw store
# and the warehouse
USER root
RUN mkdir -p /opt/carewatch/var && chown -R airflow:root /opt/carewatch && chmod -R g+rwX /opt/carewatch/var
USER airflow
# the package is in site-packages: SQL, suites, config and templates are read from the project
# directory (include/, expectations/ and config/ are mounted there by docker-compose.yaml)
ENV CAREWATCH_ROOT=/opt/carewatch
