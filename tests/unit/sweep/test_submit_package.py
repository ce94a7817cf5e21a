"""What a Ray Job uploads: the package Ray itself builds from the project with ltray's excludes
(and the .gitignore Ray also reads) holds every module of ltray and the experiments, and none of
the study folders, virtual environments or git objects."""

import zipfile

from ray._private.runtime_env.packaging import _zip_files

from ltray.sweep.submit import EXCLUDES, PROJECT


def test_the_uploaded_project_holds_every_module_and_no_results(tmp_path):
    made = not (PROJECT / "results").exists()
    (PROJECT / "results" / "fx").mkdir(parents=True, exist_ok=True)  # a user's study folder, as after a sweep
    out = tmp_path / "pkg.zip"
    try:
        _zip_files(str(PROJECT), EXCLUDES, str(out), include_gitignore=True)
    finally:
        if made:
            (PROJECT / "results" / "fx").rmdir()
            (PROJECT / "results").rmdir()
    names = set(zipfile.ZipFile(out).namelist())
    modules = {str(p.relative_to(PROJECT)) for top in ("ltray", "dashboard", "experiments")
               for p in (PROJECT / top).rglob("*.py") if "__pycache__" not in p.parts}
    assert modules and modules <= names, sorted(modules - names)
    assert "ltray/results/schema.py" in names  # a package named like the study folder
    assert not any(n.startswith(("results/", ".git/", ".venv/")) for n in names)
