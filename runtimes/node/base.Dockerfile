# The offline stand-in for node:20-bookworm-slim, built by scripts/base-images.sh when Docker Hub
# cannot be reached: Debian bookworm (debootstrap) plus the host's Node.js binary.
ARG DEBIAN_IMAGE=plat-base/debian:bookworm
FROM ${DEBIAN_IMAGE}
COPY node /usr/local/bin/node
RUN node --version
CMD ["node"]
