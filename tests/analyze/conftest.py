from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
NMC = DATA / "taufactor_nmc_electrode" / "electrode.tiff"


@pytest.fixture(scope="session")
def nmc():
    if not NMC.exists():
        pytest.skip(f"reference data absent: {NMC}")
    import tifffile

    return tifffile.imread(NMC)
