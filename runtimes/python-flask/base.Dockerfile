# The offline stand-in for python:3.11-slim-bookworm, built by scripts/base-images.sh when Docker Hub
# cannot be reached: Debian bookworm (debootstrap) already carries python3 (3.11).
ARG DEBIAN_IMAGE=plat-base/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN python3 --version
CMD ["python3"]
