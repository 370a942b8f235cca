"""User strings reaching generated TOML and Rust: escaped so the output parses and means what was written."""

import subprocess
import tomllib
import types

import pytest

from tinypipe.core.errors import UserError
from tinypipe.core.escape import c_string, comment_text, rust_string, toml_string
from tinypipe.stages.firmware import render_app_config, render_hal_manifest

HOSTILE = ['plain', 'quo"te', "back\\slash", "new\nline", "tab\t", "*/ end", "{{braces}}", "ümlaut ä", "日本",
           "nul\0byte", "bell\x07", '"]\n[patch.crates-io]\nx = "', "emoji 🙂"]
CARGO = '[package]\nname = "firmware"\n\n[dependencies]\n\n[features]\n'


def crate(name, version="0.1", features=()):
    return types.SimpleNamespace(crate=name, version=version, features=list(features))


@pytest.mark.parametrize("text", HOSTILE)
def test_toml_strings_round_trip(text):
    assert tomllib.loads(f"x = {toml_string(text)}")["x"] == text


def test_hal_versions_and_features_cannot_add_tables_or_dependencies():
    manifest = render_hal_manifest(CARGO, [crate("stm32f4xx-hal", HOSTILE[11], HOSTILE)])
    parsed = tomllib.loads(manifest)
    assert list(parsed["dependencies"]) == ["stm32f4xx-hal"]
    assert parsed["dependencies"]["stm32f4xx-hal"] == {"version": HOSTILE[11], "features": HOSTILE}
    assert "patch" not in parsed


@pytest.mark.parametrize("name", ['evil = { path = "/etc" }\n[patch.crates-io]\nx', "a b", "ä", "-x", ""])
def test_a_crate_name_outside_cargos_grammar_is_refused(name):
    with pytest.raises(UserError, match="is not a crate name"):
        render_hal_manifest(CARGO, [crate(name)])


def test_rust_and_c_literals_mean_what_was_written(tmp_path):
    """rustc itself reads the literals back (non-ASCII included, where JSON's \\u00e4 would be refused)."""
    rust = tmp_path / "lit.rs"
    body = "".join(f"    assert_eq!({rust_string(t)}.as_bytes(), &{list(t.encode())}[..]);\n" for t in HOSTILE)
    rust.write_text(f"// {comment_text(HOSTILE[5] + HOSTILE[3])}\nfn main() {{\n{body}}}\n")
    built = subprocess.run(["/usr/bin/rustc", "--edition", "2021", "-o", str(tmp_path / "lit"), str(rust)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert subprocess.run([str(tmp_path / "lit")]).returncode == 0
    c = tmp_path / "lit.c"
    checks = "".join(f"  if (sizeof({c_string(t)}) != {len(t.encode()) + 1} || memcmp({c_string(t)}, "
                     f"(const unsigned char[]){{{', '.join(map(str, t.encode())) or '0'}}}, {len(t.encode())})) "
                     f"return 1;\n" for t in HOSTILE)
    c.write_text(f"#include <string.h>\n/* {comment_text(HOSTILE[5])} */\nint main(void) {{\n{checks}  return 0;\n}}\n")
    built = subprocess.run(["cc", "-Wall", "-Werror", "-Wno-trigraphs", "-o", str(tmp_path / "litc"), str(c)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert subprocess.run([str(tmp_path / "litc")]).returncode == 0


def test_class_names_reach_rust_escaped():
    text = render_app_config({"classes": ["wave", 'a"b', "ümlaut"]}, {"window": 4, "axes": ["x"], "sample_rate_hz": 50})
    assert 'pub const CLASSES: &[&str] = &["wave", "a\\"b", "\\u{fc}mlaut"];' in text
