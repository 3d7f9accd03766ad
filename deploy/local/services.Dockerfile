# PostgreSQL 15, Redis and Mosquitto from Debian's packages in one image, for machines that
# reach no image registry (ours): compose.local.yaml runs each service from it in place of
# postgres:15, redis:7 and eclipse-mosquitto:2. Context: the repository root.
ARG BASE_IMAGE=localhost/strata-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      postgresql-15 redis-server redis-tools mosquitto mosquitto-clients >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY deploy/local/postgres.sh /usr/local/bin/strata-postgres
