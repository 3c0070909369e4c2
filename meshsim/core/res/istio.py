"""Istio versions: the profile names and the Istio (major, minor) each follows.

Mirrors Istio's compatibility versions
(``manifests/helm-profiles/compatibility-version-1.23.yaml`` and its
siblings), which pin an older release's defaults by setting feature flags of
``pilot/pkg/features/pilot.go`` (here only
``EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY`` matters: false before 1.24).
Every core's ``profile`` classmethod reads this table, so it sits below them
all; :mod:`meshsim.core.res.profiles` bundles the cores' defaults per profile
and re-exports these names.

>>> PROFILE_NAMES
('envoy', 'istio', 'istio-1.20', 'istio-1.24')
"""

from __future__ import annotations

__all__ = ["ISTIO_PROFILES", "PROFILE_NAMES", "is_istio", "istio_version"]


#: Istio profile name -> the Istio (major, minor) whose control-plane defaults it follows.  ``"istio"`` is the
#: current Istio: 1.24 and later (the last change of a default modelled here is 1.24's, see RetryPolicy.profile).
ISTIO_PROFILES: dict[str, tuple[int, int]] = {"istio": (1, 24), "istio-1.20": (1, 20), "istio-1.24": (1, 24)}
#: every resilience profile name :func:`profile` accepts
PROFILE_NAMES: tuple[str, ...] = ("envoy", *ISTIO_PROFILES)


def is_istio(name: str | None) -> bool:
    """Whether ``name`` is a mesh profile with Istio's control plane (``"istio"``, ``"istio-1.20"``, ...).

    >>> is_istio("istio-1.20"), is_istio("istio"), is_istio("envoy"), is_istio(None)
    (True, True, False, False)
    """
    return name in ISTIO_PROFILES


def istio_version(name: str) -> tuple[int, int]:
    """The Istio (major, minor) an Istio profile follows.

    >>> istio_version("istio"), istio_version("istio-1.20")
    ((1, 24), (1, 20))
    """
    if name not in ISTIO_PROFILES:
        raise ValueError(f"not an Istio profile: {name!r}; Istio profiles are {tuple(ISTIO_PROFILES)}")
    return ISTIO_PROFILES[name]


def _check_profile(name: str) -> str:
    if name not in PROFILE_NAMES:
        raise ValueError(f"name must be one of {PROFILE_NAMES}, got {name!r}")
    return name
