# The sandbox's stand-ins for the Jarvis backend, Ollama, Prometheus and Grafana (and the
# idle neo4j and loki), built on the local Debian base by scripts/sandbox.sh.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY standin.py /opt/standin.py
RUN mkdir -p /var/lib/ollama-standin
CMD ["python3", "/opt/standin.py", "--help"]
