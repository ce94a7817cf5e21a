import pytest

from fixtures_study import write_study
from ltray import results as R


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """The fixture study (one per test module: some tests add files to it): (its folder, every table)."""
    study = write_study(tmp_path_factory.mktemp("r"))
    return study, R.load_study(str(study))
