"""Which PLUMED `make module` builds against (molenv.plumed.kernel): a PLUMED of the user's
named with ``--plumed`` (`make module PLUMED=...`), found through its `plumed info`.

A fake `plumed` answers ``info --root`` and ``info --include-dir`` like an installed PLUMED
with prefix ``<tmp>/prefix``; nothing is compiled here (the builds themselves are checked by
hand, docs/install.md)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import molenv.plumed.kernel as kernel


def fake_plumed(tmp_path: Path, program: str = "plumed") -> Path:
    prefix = tmp_path / "prefix"
    exe = prefix / "bin" / program
    exe.parent.mkdir(parents=True)
    exe.write_text(
        "#!/bin/sh\n"
        f'[ "$2" = --root ] && echo {prefix}/lib/{program}\n'
        f'[ "$2" = --include-dir ] && echo {prefix}/include\n'
        "exit 0\n"
    )
    exe.chmod(0o755)
    return exe


def test_a_named_plumed_is_found_through_its_info(tmp_path, monkeypatch):
    exe = fake_plumed(tmp_path)
    monkeypatch.setenv("PLUMED_KERNEL", "/elsewhere/libplumedKernel.so")  # the named one wins
    monkeypatch.chdir(exe.parent)
    found = kernel.detect("./plumed")  # a relative path is recorded absolute
    prefix = tmp_path / "prefix"
    assert found == kernel.PlumedInstall(
        "user", str(exe), str(prefix / "lib" / "libplumedKernel.so"), str(prefix / "include" / "plumed"), {}
    )


def test_a_program_name_suffix_names_the_kernel_and_headers(tmp_path):
    found = kernel.detect(str(fake_plumed(tmp_path, "plumed_mpi")))
    assert found.kernel.endswith("/lib/libplumed_mpiKernel.so")
    assert found.include_dir.endswith("/include/plumed_mpi")


def test_command_line_kind_plumed_include_dir_and_record(tmp_path, monkeypatch, capsys):
    exe = fake_plumed(tmp_path)
    for what, expected in [("kind", "user"), ("plumed", str(exe)), ("include-dir", str(tmp_path / "prefix" / "include" / "plumed"))]:
        kernel.main(["--plumed", str(exe), what])
        assert capsys.readouterr().out.strip() == expected
    monkeypatch.setattr(kernel, "LIB_DIR", tmp_path / "lib")
    kernel.main(["--plumed", str(exe), "record"])
    assert json.loads((tmp_path / "lib" / kernel.RECORD_NAME).read_text())["executable"] == str(exe)


def test_a_missing_plumed_is_an_error_not_a_fallback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        kernel.main(["--plumed", str(tmp_path / "nothing"), "kind"])
    assert exit_.value.code == 1
    assert "is not an executable `plumed`" in capsys.readouterr().err
