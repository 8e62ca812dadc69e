# The offline stand-in for denoland/deno, built by scripts/base-images.sh when Docker Hub cannot be
# reached: Debian bookworm (debootstrap) plus the deno binary from the npm package.
ARG DEBIAN_IMAGE=plat-base/debian:bookworm
FROM ${DEBIAN_IMAGE}
COPY deno /usr/bin/deno
RUN deno --version
ENV DENO_DIR=/tmp/deno-dir DENO_NO_UPDATE_CHECK=1
CMD ["deno"]
