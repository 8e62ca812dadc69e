# The offline stand-in for oven/bun:1, built by scripts/base-images.sh when Docker Hub cannot be
# reached: Debian bookworm (debootstrap) plus the bun binary from the npm package.
ARG DEBIAN_IMAGE=plat-base/debian:bookworm
FROM ${DEBIAN_IMAGE}
COPY bun /usr/local/bin/bun
RUN ln -s /usr/local/bin/bun /usr/local/bin/bunx && bun --version
ENV BUN_INSTALL_CACHE_DIR=/tmp/.bun-cache
CMD ["bun"]
