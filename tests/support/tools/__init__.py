"""Wrappers for outside tools used as builders and clients by the interop suite: buildah, podman,
containerd/ctr, umoci, the ORAS SDK (skopeo's is tests/support/skopeo.py). Each keeps its state
under a directory of the test's own, and every call has a deadline (base.py)."""
