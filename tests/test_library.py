"""The model library (core, no Qt): link vs copy, split models, remove, rename, defaults,
refresh, the memory estimate and its fit verdict, and this machine's memory."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from tiny_model import write_random_bytes, write_tiny_llama

from app import paths
from app.core import sysinfo
from app.core.gguf import GGUFError, read_gguf
from app.core.library import (
    FITS_SHARE_OF_AVAILABLE,
    TIGHT_SHARE_OF_TOTAL,
    CopyCancelled,
    Fit,
    LibraryError,
    ModelDefaults,
    ModelInfo,
    ModelLibrary,
    copy_into_library,
    effective_context,
    fit,
    ram_estimate,
    read_model,
)
from app.core.sysinfo import MemoryInfo, parse_meminfo


def _split(folder: Path, count: int = 3, prefix: str = "big") -> list[Path]:
    """A split model: each part a small valid GGUF (as gguf-split makes), named as llama.cpp does."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_tiny_llama(folder / f"{prefix}-{i:05d}-of-{count:05d}.gguf", seed=i, n_layer=1 + (i == 1))
        for i in range(1, count + 1)
    ]


def _library_files() -> list[str]:
    return sorted(p.name for p in paths.models_dir().rglob("*") if p.is_file())


# -- link and copy -------------------------------------------------------------------------------


def test_link_keeps_the_file_where_it_is(tiny: Path) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny)
    assert info.path == str(tiny.resolve()) and info.linked and info.status == "linked"
    assert info.size == tiny.stat().st_size and info.architecture == "llama"
    assert info.kv_bytes_per_token == 2 * 2 * 64 * 2  # layers * (k+v) * n_embd_kv * f16
    assert _library_files() == []
    assert ModelLibrary().get(tiny).name == "hearth-tiny-llama"  # stored


def test_copy_puts_the_file_in_the_library_and_a_second_import_is_the_same_entry(tiny: Path) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny, name="Tiny copy", linked=False)
    copied = paths.models_dir() / tiny.name
    assert info.path == str(copied.resolve()) and not info.linked and info.status == "copied"
    assert info.source == str(tiny.resolve()) and info.name == "Tiny copy"
    assert copied.read_bytes() == tiny.read_bytes()
    # the same file again, either way, and through another spelling of its path
    assert library.add_file(tiny, linked=False) is info
    assert library.add_file(tiny.parent / ".." / tiny.parent.name / tiny.name) is info
    assert library.add_file(copied) is info
    assert len(library.models()) == 1 and _library_files() == [tiny.name]


def test_copy_reports_progress_and_a_name_clash_gets_a_new_name(tiny: Path, tmp_path: Path) -> None:
    other = write_tiny_llama(tmp_path / "elsewhere" / tiny.name, n_layer=1)  # same name, other file
    seen: list[tuple[int, int]] = []
    first = copy_into_library(other)
    second = copy_into_library(tiny, progress=lambda done, total: seen.append((done, total)))
    assert first.name == tiny.name and second.name == "tiny-llama-2.gguf"
    assert second.read_bytes() == tiny.read_bytes() and first.read_bytes() == other.read_bytes()
    size = tiny.stat().st_size
    assert seen and seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert copy_into_library(tiny) == second  # identical copy already there: reused


def test_cancelled_copy_leaves_nothing_behind(tiny: Path) -> None:
    with pytest.raises(CopyCancelled):
        copy_into_library(tiny, cancel=lambda: True)
    assert list(paths.models_dir().iterdir()) == []
    library = ModelLibrary()
    assert library.models() == []


def test_copy_checks_the_header_before_copying(tmp_path: Path) -> None:
    bad = write_random_bytes(tmp_path / "junk.gguf", 4096)
    with pytest.raises(GGUFError) as err:
        copy_into_library(bad)
    assert "junk.gguf" in str(err.value) and "not a GGUF file" in str(err.value)
    assert list(paths.models_dir().iterdir()) == []


def test_not_enough_space_is_a_plain_error(tiny: Path, monkeypatch) -> None:
    import app.core.library as library_module

    monkeypatch.setattr(library_module.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10**6, 10**6 - 10, 10))
    with pytest.raises(LibraryError, match="Not enough free space"):
        ModelLibrary().add_file(tiny, linked=False)
    assert list(paths.models_dir().iterdir()) == []


# -- split models --------------------------------------------------------------------------------


def test_a_split_model_is_one_entry_with_the_size_of_all_parts(tmp_path: Path) -> None:
    parts = _split(tmp_path / "split")
    library = ModelLibrary()
    info = library.add_file(parts[1])  # any part names the whole model
    assert info.path == str(parts[0].resolve())
    assert info.size == sum(p.stat().st_size for p in parts)
    assert info.parameter_count == sum(read_gguf(p).parameter_count for p in parts)
    assert library.add_file(parts[2]) is info and library.add_file(parts[0]) is info
    assert len(library.models()) == 1
    assert library.get(parts[2]) is info
    parts[2].unlink()
    assert not info.exists and info.status == "missing"


def test_a_split_model_with_a_missing_part_is_refused(tmp_path: Path) -> None:
    parts = _split(tmp_path / "split")
    parts[1].unlink()
    with pytest.raises(GGUFError, match="part 2 of 3"):
        ModelLibrary().add_file(parts[0])
    with pytest.raises(GGUFError, match="nothing.gguf: the file does not exist"):
        ModelLibrary().add_file(tmp_path / "nothing.gguf")


def test_copying_a_split_model_copies_every_part_and_removing_frees_them_all(tmp_path: Path) -> None:
    parts = _split(tmp_path / "split")
    library = ModelLibrary()
    info = library.add_file(parts[0], linked=False)
    assert _library_files() == sorted(p.name for p in parts)
    total = sum(p.stat().st_size for p in parts)
    assert library.reclaimable_bytes(info.path) == total
    assert library.remove(info.path) == total
    assert _library_files() == [] and all(p.exists() for p in parts)


# -- remove, rename, defaults --------------------------------------------------------------------


def test_removing_a_linked_model_only_forgets_it(tiny: Path) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny)
    assert library.reclaimable_bytes(info.path) == 0
    assert library.remove(info.path) == 0
    assert tiny.exists() and library.models() == [] and ModelLibrary().models() == []
    assert library.remove(info.path) == 0  # already gone: nothing to do


def test_removing_a_copied_model_deletes_the_copy_and_returns_the_bytes(tiny: Path) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny, linked=False)
    assert library.remove(info.path) == tiny.stat().st_size
    assert not Path(info.path).exists() and tiny.exists()
    assert ModelLibrary().models() == []


def test_a_record_claiming_a_copy_outside_the_library_never_deletes_the_file(tiny: Path) -> None:
    store = paths.data_dir() / "models.json"
    record = ModelInfo(path=str(tiny.resolve()), name="hand edited", size=1, linked=False)
    store.write_text(json.dumps({"version": 2, "models": [record.to_dict()]}))
    library = ModelLibrary()
    assert library.reclaimable_bytes(tiny) == 0
    assert library.remove(tiny) == 0
    assert tiny.exists()


def test_rename_is_stored_and_an_empty_name_is_refused(tiny: Path) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny)
    library.rename(info.path, "  My   tiny model ")
    assert ModelLibrary().get(info.path).name == "My tiny model"
    with pytest.raises(LibraryError, match="needs a name"):
        library.rename(info.path, "   ")
    with pytest.raises(LibraryError, match="no longer in the library"):
        library.rename("/nowhere/x.gguf", "x")


def test_defaults_round_trip_and_are_validated(tiny: Path) -> None:
    library = ModelLibrary()
    info = library.add_file(tiny)
    assert info.defaults.is_empty()
    library.set_defaults(info.path, ModelDefaults(n_ctx=256, n_gpu_layers=-1, n_threads=2, system_prompt="Be brief."))
    again = ModelLibrary().get(info.path)
    assert again.defaults == ModelDefaults(256, -1, 2, "Be brief.")
    library.set_defaults(info.path, ModelDefaults(system_prompt=""))
    assert ModelLibrary().get(info.path).defaults.is_empty()
    with pytest.raises(LibraryError, match=r"trained for \(512 tokens\)"):
        library.set_defaults(info.path, ModelDefaults(n_ctx=1024))
    with pytest.raises(LibraryError, match="Threads"):
        library.set_defaults(info.path, ModelDefaults(n_threads=0))
    assert library.get(info.path).defaults.is_empty()


def test_old_and_damaged_records_load_and_refresh_fills_in_new_fields(tiny: Path) -> None:
    store = paths.data_dir() / "models.json"
    store.write_text(
        json.dumps(
            {
                "version": 1,
                "models": [
                    {
                        "path": str(tiny.resolve()),
                        "name": "old",
                        "size": 5,
                        "quantization": "F32",
                        "linked": True,
                        "added": 1.0,
                    },
                    {"path": 42},  # damaged
                    "not a record",
                    {
                        "path": "/gone/x.gguf",
                        "name": "",
                        "size": "big",
                        "added": "yesterday",
                        "linked": "no",
                        "defaults": {"n_ctx": "many", "system_prompt": 3},
                    },
                ],
            }
        )
    )
    library = ModelLibrary()
    assert len(library.models()) == 2
    old, gone = library.get(tiny), library.get("/gone/x.gguf")
    assert old.name == "old" and old.kv_bytes_per_token is None and old.defaults.is_empty()
    assert gone.name == "x" and gone.size == 0 and gone.linked is True and gone.defaults.is_empty()
    result = library.refresh()
    assert [m.path for m in result.updated] == [old.path]
    assert old.kv_bytes_per_token == 512 and old.size == tiny.stat().st_size and old.name == "old"
    assert [m.path for m in result.missing] == [gone.path]
    assert json.loads(store.read_text())["version"] == 2


def test_an_unreadable_store_gives_an_empty_library() -> None:
    (paths.data_dir() / "models.json").write_text("{ not json")
    assert ModelLibrary().models() == []
    (paths.data_dir() / "models.json").write_text('["a list"]')
    assert ModelLibrary().models() == []


# -- refresh ---------------------------------------------------------------------------------------


def test_refresh_finds_files_dropped_into_the_models_folder_and_marks_vanished_ones(tiny: Path, tmp_path: Path) -> None:
    library = ModelLibrary()
    linked = library.add_file(tiny)
    folder = paths.models_dir()
    shutil.copyfile(tiny, folder / "dropped.gguf")
    _split(folder / "sub")
    write_random_bytes(folder / "broken.gguf", 1000)
    (folder / ".hidden.gguf").write_bytes(b"x")
    (folder / ".hearth-copy-1234-x.gguf.part").write_bytes(b"x")

    result = library.refresh()
    assert sorted(Path(m.path).name for m in result.added) == ["big-00001-of-00003.gguf", "dropped.gguf"]
    assert all(m.status == "copied" for m in result.added)
    assert len(result.errors) == 1 and "broken.gguf" in result.errors[0]
    assert result.changed and result.missing == []
    assert len(ModelLibrary().models()) == 3

    tiny.unlink()
    result = library.refresh()
    assert [m.path for m in result.newly_missing] == [linked.path] and result.changed
    assert library.get(linked.path) is not None and not library.get(linked.path).exists
    assert library.get(linked.path).status == "missing"
    again = library.refresh()
    assert not again.changed and [m.path for m in again.missing] == [linked.path]


def test_a_file_in_the_models_folder_belongs_to_the_library_even_when_linked() -> None:
    path = write_tiny_llama(paths.models_dir() / "mine.gguf")
    library = ModelLibrary()
    info = library.add_file(path, linked=True)
    assert info.status == "copied"
    size = path.stat().st_size
    assert library.reclaimable_bytes(path) == size
    assert library.remove(path) == size
    assert not path.exists()


# -- metadata, estimate, fit -----------------------------------------------------------------------


def test_demo_model_metadata_and_estimate(demo_model: Path) -> None:
    library = ModelLibrary()
    info = library.add_file(demo_model)  # linked: the demo file is never copied or deleted
    meta = library.metadata(info.path)
    assert meta.architecture == "llama" and meta.context_length == 8192
    assert info.parameters == "135M" and info.quantization == "Q4_1" and info.has_chat_template
    assert info.parameter_count == meta.parameter_count
    for n_ctx in (512, 4096, 8192):
        assert ram_estimate(info, n_ctx) == meta.estimate_ram_bytes(n_ctx)
    assert ram_estimate(info, 100_000) == meta.estimate_ram_bytes(8192)  # clamped to what it was trained for
    assert read_model(demo_model).path == info.path


def test_effective_context_prefers_the_models_default() -> None:
    info = ModelInfo(path="/m.gguf", name="m", size=1, context_length=8192)
    assert effective_context(info) == 8192
    assert effective_context(info, 4096) == 4096
    info.defaults.n_ctx = 2048
    assert effective_context(info, 4096) == 2048
    assert effective_context(ModelInfo(path="/n.gguf", name="n", size=1), None) == 0


def test_fit_thresholds() -> None:
    info = ModelInfo(path="/m.gguf", name="m", size=1_000_000_000, kv_bytes_per_token=100_000, context_length=4096)
    need = ram_estimate(info, 4096)
    assert need == 1_000_000_000 + 409_600_000 + 80 * 1024 * 1024 + 50_000_000
    total = 64 * 10**9
    # fits: within 80 % of what is available now
    assert fit(info, 4096, MemoryInfo(total, int(need / FITS_SHARE_OF_AVAILABLE) + 1)) is Fit.FITS
    # tight: not in what is available, but within 90 % of the total
    assert fit(info, 4096, MemoryInfo(total, int(need / FITS_SHARE_OF_AVAILABLE) - 1000)) is Fit.TIGHT
    assert fit(info, 4096, MemoryInfo(int(need / TIGHT_SHARE_OF_TOTAL) + 1, 0)) is Fit.TIGHT
    # won't fit: more than 90 % of the total
    assert fit(info, 4096, MemoryInfo(int(need / TIGHT_SHARE_OF_TOTAL) - 1000, 10**12)) is Fit.WONT_FIT
    # a smaller context can make it fit
    small = MemoryInfo(total, int(ram_estimate(info, 512) / FITS_SHARE_OF_AVAILABLE) + 1)
    assert fit(info, 512, small) is Fit.FITS and fit(info, 4096, small) is Fit.TIGHT
    # unknown memory: say so; unknown available: judged against the total
    assert fit(info, 4096, MemoryInfo(None, None)) is Fit.UNKNOWN
    assert fit(info, 4096, MemoryInfo(total, None)) is Fit.FITS
    assert ModelLibrary.fit(info, 4096, MemoryInfo(1, 1)) is Fit.WONT_FIT
    assert Fit.WONT_FIT.value == "won't fit"


# -- this machine's memory -------------------------------------------------------------------------


def test_parse_meminfo() -> None:
    text = "MemTotal:       16000000 kB\nMemFree:  1000 kB\nMemAvailable:    8000000 kB\nBuffers: 5 kB\nbogus\n"
    assert parse_meminfo(text) == MemoryInfo(16_000_000 * 1024, 8_000_000 * 1024)
    old_kernel = "MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 5 kB\nCached: 20 kB\n"
    assert parse_meminfo(old_kernel) == MemoryInfo(100 * 1024, 35 * 1024)
    assert parse_meminfo("") == MemoryInfo(None, None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/meminfo")
def test_memory_of_this_machine() -> None:
    mem = sysinfo.memory()
    assert mem.total is not None and mem.total > 64 * 1024 * 1024
    assert mem.available is not None and 0 <= mem.available <= mem.total
