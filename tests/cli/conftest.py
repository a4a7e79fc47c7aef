from tests.stream.videos import digit_video  # noqa: F401 - a shared session fixture
