# Pulse stream worker image.
#
#   docker build -t pulse:local .
#   docker run --rm -e KAFKA_BOOTSTRAP_SERVERS=host:9092 pulse:local
#
# No ENTRYPOINT: the command is the whole `pulse ...` invocation, so the same
# image runs `pulse worker` (the default) or any other Pulse command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user with a fixed uid (the Kubernetes manifests rely on it)
# and a state directory it owns; volumes mounted there inherit the ownership.
RUN groupadd --system --gid 10001 pulse \
 && useradd --system --uid 10001 --gid pulse --home-dir /home/pulse --create-home pulse \
 && mkdir -p /var/lib/pulse \
 && chown pulse:pulse /var/lib/pulse

WORKDIR /app
COPY . /app
# Editable install: pipeline/contract/avro.py reads schemas/ (and `pulse kafka start`
# reads deploy/kafka/pom.xml) relative to the source tree, which a plain
# `pip install .` would not ship into site-packages. Switch to `pip install .`
# once those files are package data.
RUN pip install --editable .

ENV PULSE_HOME=/var/lib/pulse \
    PULSE_METRICS_PORT=9108

USER pulse
EXPOSE 9108
CMD ["pulse", "worker"]
