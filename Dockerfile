# The project's Airflow image: the official Airflow 3.3.2 image plus the locked requirements
# (the same constraints.txt as local development) and the carewatch package.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root requirements.txt constraints.txt /opt/carewatch/
RUN pip install --no-cache-dir -r /opt/carewatch/requirements.txt -c /opt/carewatch/constraints.txt

COPY --chown=airflow:root pyproject.toml README.md /opt/carewatch/
COPY --chown=airflow:root src /opt/carewatch/src
RUN pip install --no-cache-dir --no-deps /opt/carewatch
# the data volume (compose: carewatch-var) is mounted here; a new named volume takes this
# directory's owner and mode, so the workers (uid AIRFLOW_UID, group 0) can write the raw store
# and the warehouse
USER root
RUN mkdir -p /opt/carewatch/var && chown -R airflow:root /opt/carewatch && chmod -R g+rwX /opt/carewatch/var
# the UI password file's volume (compose: airflow-passwords), likewise; airflow-init (root)
# writes the file and gives it to AIRFLOW_UID:0
RUN mkdir -p /opt/airflow/passwords && chown -R airflow:root /opt/airflow/passwords && chmod -R g+rwX /opt/airflow/passwords
USER airflow
# the package is in site-packages: SQL, suites, config and templates are read from the project
# directory (include/, expectations/ and config/ are mounted there by docker-compose.yaml)
ENV CAREWATCH_ROOT=/opt/carewatch
