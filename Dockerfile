# condmon's runtime image: the binary, its schemas and the sample rules on a minimal Debian
# (bookworm, `debootstrap --variant=minbase`: glibc and libstdc++, which the binary needs),
# run as an unprivileged user, the state directory a volume, config and rules mounted.
#
# The binary is built outside the image (`cargo build --release`) and copied in: no RUN step,
# so the image builds with `podman build` where containers cannot run, and the tests package
# the debug binary they already built (`--build-arg BINARY=target/debug/condmon`). The base
# image is made from Debian's packages by `deploy/image/base.sh` (no registry needed):
#   deploy/image/base.sh && cargo build --release && podman build -t condmon:latest .
ARG BASE=localhost/condmon-base:bookworm-r2
FROM ${BASE}
ARG BINARY=target/release/condmon

COPY ${BINARY} /usr/local/bin/condmon
COPY schemas/ /usr/share/condmon/schemas/
COPY topology/rules.toml /etc/condmon/rules.toml
COPY deploy/image/condmon.toml /etc/condmon/condmon.toml
# The state directory, owned by the user condmon runs as (COPY, not RUN: see above).
COPY --chown=10001:10001 deploy/image/state/ /var/lib/condmon/

USER 10001:10001
VOLUME ["/var/lib/condmon"]
ENV CONDMON_CONFIG=/etc/condmon/condmon.toml \
    CONDMON_LOG_JSON=true \
    RUST_LOG=info
# 9464: metrics and probes; 9465: customer data.
EXPOSE 9464 9465
ENTRYPOINT ["/usr/local/bin/condmon"]
CMD ["run"]
