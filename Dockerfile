# hookjail in a container image. Build from the repository's root:
#
#   docker build -t hookjail .
#
# and run it with the shipped seccomp profile (README "Deploying"; deploy/compose.yaml and deploy/kubernetes/
# for replicas behind a load balancer):
#
#   docker run --rm -p 4000:4000 --security-opt seccomp=deploy/seccomp/hookjail.json \
#     --security-opt apparmor=hookjail \
#     -v /srv/hookjail:/etc/hookjail:ro \
#     -e LITELLM_MASTER_KEY -e PROXY_BASE_URL -e GENERIC_CLIENT_ID -e GENERIC_CLIENT_SECRET \
#     -e GENERIC_DISCOVERY_URL -e DATABASE_URL hookjail
#
# /etc/hookjail holds config.yaml and the hook (custom_sso.py), read-only: the proxy re-imports the hook when
# the file changes. Its database is PostgreSQL (general_settings.database_url: os.environ/DATABASE_URL, see
# deploy/config.yaml), or a SQLite file under /var/lib/hookjail (a volume) for a single replica; not the default
# hookjail.db beside config.yaml, which is read-only here.
#
# The sandbox builds itself inside the container, without any privilege the container does not already have:
# it enters new user, mount, PID, IPC and network namespaces (unshare), mounts a size-capped tmpfs inside them,
# then applies Landlock and seccomp filters to itself. What the host and the runtime must allow for that:
#
# * seccomp: Docker's and Kubernetes' default profiles refuse unshare() and clone() with namespace flags, and
#   mount(), to a container without CAP_SYS_ADMIN. deploy/seccomp/hookjail.json is Docker's default plus exactly
#   those two calls, narrowed to the flags the sandbox uses. Never turn seccomp off or make the container
#   privileged instead: both would lift far more than the sandbox needs.
# * AppArmor (Debian and Ubuntu hosts): Docker's docker-default profile has "deny mount,", which refuses the
#   tmpfs; Ubuntu 24.04 also mediates user namespace creation (kernel.apparmor_restrict_unprivileged_userns).
#   deploy/apparmor/hookjail is docker-default plus that one tmpfs mount and "userns"; load it on the host
#   (apparmor_parser -r deploy/apparmor/hookjail). On a host without AppArmor the option is ignored.
# * the kernel: an unprivileged process (and root in a container is one: it has no CAP_SYS_ADMIN) can create a
#   user namespace only where the host allows it: user.max_user_namespaces > 0, Debian's
#   kernel.unprivileged_userns_clone=1 (the default since Debian 11), Landlock ABI >= 6 (Linux 6.12+).
#
# `hookjail check` in the container prints what it got: docker run ... hookjail hookjail check --config
# /etc/hookjail/config.yaml. In strict mode (the default) a missing layer stops start-up and names the layer.
#
# Root or not: the image runs as the unprivileged user hookjail (uid 10001) by default. The sandbox does not need
# root, but one layer does: distinct_uid, where a root proxy starts each worker as uid 65532
# (hook_settings.worker_uid) so that it shares no uid, per-uid quota or file ownership with the proxy. As uid
# 10001 that layer is reported off ("the proxy does not run as root") and the worker runs as 10001 outside its
# namespace, held by Landlock, seccomp and the namespaces alone. To have it, run the container as root with only
# the capabilities it needs and the same seccomp profile, never with more:
#
#   docker run --user 0 --cap-drop ALL --cap-add CHOWN --cap-add SETUID --cap-add SETGID \
#     --security-opt no-new-privileges --security-opt seccomp=deploy/seccomp/hookjail.json ...
#
# (CHOWN: the worker's temp root is chowned to 65532; SETUID/SETGID: the worker is started as 65532.) Root in
# the container then has those three capabilities and no CAP_SYS_ADMIN; a compromised proxy is root in the
# container, which the non-root default avoids. Pick one: the non-root default, or root for distinct_uid.
# Root with these three needs distinct_uid to be on (worker_uid set, and 65532 able to read the installation
# and /etc/hookjail): otherwise the worker maps uid 0 into its user namespace, which Linux allows only with
# CAP_SETFCAP, and strict mode refuses to start ("user_namespace ...: Operation not permitted").

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: wheels for hookjail and every dependency -----------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the wheel is made of (no .venv, tests or caches from a working tree).
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY runner ./runner
COPY sdk ./sdk
RUN find . -name __pycache__ -prune -exec rm -rf {} + \
    && pip wheel --wheel-dir /wheels .

# --- runtime ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# libseccomp2: the sandbox compiles its seccomp filters with it (pyseccomp loads it with ctypes).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libseccomp2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-index --find-links /tmp/wheels hookjail \
    && rm -rf /tmp/wheels \
    && python -c "import pyseccomp, proxy, runner, sdk"
# A numeric uid, so that Kubernetes' runAsNonRoot can check it. /var/lib/hookjail: a SQLite database, if any.
RUN groupadd --system --gid 10001 hookjail \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/hookjail --shell /usr/sbin/nologin hookjail \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/hookjail \
    && install -d -m 0755 /etc/hookjail
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/lib/hookjail
USER 10001:10001
# config.yaml and the hook go in /etc/hookjail, mounted read-only (a bind mount, a ConfigMap), mode 0644: uid
# 10001 reads them, and so does uid 65532 with distinct_uid.
EXPOSE 4000
# GET /health without the master key: 200 {"status": "ok"} or 503 (the hook cannot run, the database is down).
# The slim image has no curl: Python's urllib (an error status raises, so the check fails). Port 4000, as CMD.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4000/health', timeout=4)"]
CMD ["hookjail", "--config", "/etc/hookjail/config.yaml", "--host", "0.0.0.0"]
