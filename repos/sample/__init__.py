"""The embedded sample: OCL's DemoSource v1.0 export (OCL API v2 shape), loaded by ``load_sample``."""

from pathlib import Path

SAMPLE_EXPORT = Path(__file__).parent / "DemoSource_v1.0.20230526120030.zip"
