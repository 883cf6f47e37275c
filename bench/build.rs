//! Builds the real C code of the `probe` suite: Lua 5.4 (sources vendored by
//! the `lua-src` crate) as a small host program, twice: as distributions
//! build C (`-O1`, frame pointers) and with a 5-byte nop at every function
//! entry (`-pg -mfentry -mnop-mcount`, not linked with the profiling
//! runtime), which kernels ≥ 6.18 probe without a trap. The paths reach the
//! suite as `TRACEMERGE_LUA_PLAIN` and `TRACEMERGE_LUA_NOP`.

use std::path::{Path, PathBuf};
use std::process::Command;

const HOST: &str = r#"
/* Runs one Lua script: lua-host SCRIPT [ARG] */
#include <stdio.h>
#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARG]\n", argv[0]);
        return 2;
    }
    lua_State *state = luaL_newstate();
    luaL_openlibs(state);
    lua_pushstring(state, argc > 2 ? argv[2] : "");
    lua_setglobal(state, "ARG");
    int failed = luaL_dofile(state, argv[1]);
    if (failed)
        fprintf(stderr, "%s\n", lua_tostring(state, -1));
    lua_close(state);
    return failed ? 1 : 0;
}
"#;

fn build(out: &Path, variant: &str, cflags: &str, link: &[&str]) -> PathBuf {
    let dir = out.join(format!("lua-{variant}"));
    // cc (inside lua-src) appends CFLAGS after its own flags: ours win.
    std::env::set_var("CFLAGS", cflags);
    let artifacts = lua_src::Build::new()
        .out_dir(&dir)
        .opt_level("1")
        .debug(false)
        .build(lua_src::Lua54);
    std::env::remove_var("CFLAGS");
    let host = dir.join("host.c");
    std::fs::write(&host, HOST).unwrap();
    let exe = dir.join("lua-host");
    let object = dir.join("host.o");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(cflags.split_whitespace())
        .arg("-I")
        .arg(artifacts.include_dir())
        .arg("-c")
        .arg("-o")
        .arg(&object)
        .arg(&host)
        .status()
        .expect("running cc for the Lua host");
    assert!(status.success(), "compiling {}", host.display());
    // Linked without -pg: no profiling runtime, no gmon.out.
    let mut cmd = Command::new(&cc);
    cmd.arg("-o")
        .arg(&exe)
        .arg(&object)
        .arg("-L")
        .arg(artifacts.lib_dir());
    for lib in artifacts.libs() {
        cmd.arg(format!("-l{lib}"));
    }
    cmd.args(["-lm", "-ldl"]).args(link);
    let status = cmd.status().expect("running cc for the Lua host");
    assert!(status.success(), "linking {}", exe.display());
    exe
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // A fixed string-hash seed (Lua seeds from the time and ASLR): every run
    // makes the same calls, so counts compare across runs and builds.
    let common = "-O1 -fno-omit-frame-pointer -Dluai_makeseed(L)=0";
    let plain = build(&out, "plain", common, &[]);
    let nop = build(
        &out,
        "nop",
        &format!("{common} -pg -mfentry -mnop-mcount -fno-pic -fno-pie"),
        &["-no-pie"],
    );
    println!("cargo:rustc-env=TRACEMERGE_LUA_PLAIN={}", plain.display());
    println!("cargo:rustc-env=TRACEMERGE_LUA_NOP={}", nop.display());
}
