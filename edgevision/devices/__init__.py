"""Device profiles: recognise the board, then pick runtime, precision and threads that suit it.

``resolve_device("auto")`` detects this machine; ``resolve_device("raspberry_pi_5")`` loads a
bundled profile and a path loads your own YAML. ``choose_runtime(profile, bundle_format)`` then
picks the first preferred runtime that is installed here. Importing this package imports no engine.
"""

from __future__ import annotations

from .choose import RuntimeSupport as RuntimeSupport
from .choose import choose_runtime as choose_runtime
from .choose import resolve_device as resolve_device
from .choose import runtime_support as runtime_support
from .detect import Detection as Detection
from .detect import DeviceFacts as DeviceFacts
from .detect import detect as detect
from .detect import read_facts as read_facts
from .opencv import OpenCVInfo as OpenCVInfo
from .opencv import opencv_info as opencv_info
from .profile import DeviceProfile as DeviceProfile
from .profile import MatchRules as MatchRules
from .profile import bundled_profiles as bundled_profiles
from .profile import load_profile as load_profile
from .profile import profile_names as profile_names

__all__ = [
    "Detection", "DeviceFacts", "DeviceProfile", "MatchRules", "OpenCVInfo", "RuntimeSupport", "bundled_profiles",
    "choose_runtime", "detect", "load_profile", "opencv_info", "profile_names", "read_facts", "resolve_device", "runtime_support",
]
