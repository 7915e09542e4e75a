#!/usr/bin/python3
"""The bad-input corpus of attnsim (docs/reliability.md#bad-input-corpus).

Small files, each wrong in one way, beside manifest.json, which says for each case the
command that reads it, the exit code of its class (2 usage, 3 config, 4 trace, 5 simulation,
6 I/O) and the one line attnsim must print on stderr. tests/data/bad_inputs_test.cpp runs
every case from this directory and checks: the exit code, exactly that one line (naming the
file, or the option for command-line cases), nothing on stdout, and no output file.

    /usr/bin/python3 tests/data/bad/make_bad.py           # (re)write the files and manifest.json
    /usr/bin/python3 tests/data/bad/make_bad.py --check   # exit 1 if the directory differs

Standard library only; the same script gives the same bytes on any machine. Headers are
written as text (not json.dumps) so that a file can hold what JSON writers refuse to write:
a key given twice, invalid UTF-8, a NaN.
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

USAGE, CONFIG, TRACE, SIMULATION, IO = 2, 3, 4, 5, 6

# ---- safetensors bytes ------------------------------------------------------------------------


def safetensors(header, data=b"", length=None):
    """8-byte little-endian header length (the real one unless `length`), header, data."""
    header = header.encode("utf-8", "surrogateescape") if isinstance(header, str) else header
    return struct.pack("<Q", len(header) if length is None else length) + header + data


def entry(dtype, shape, begin, end):
    return '{"dtype": "%s", "shape": %s, "data_offsets": [%d, %d]}' % (dtype, json.dumps(shape), begin, end)


def f32(values):
    return struct.pack("<%df" % len(values), *values)


H, N, D = 2, 8, 4          # the good trace: one layer, 2 heads, 8 tokens, d = 4, F32
ELEMENTS = H * N * D
QKV_BYTES = 4 * ELEMENTS


def qkv_values(which):
    """Deterministic small values, different for q, k and v."""
    base = {"q": 1, "k": 3, "v": 5}[which]
    return [float(((i * base) % 17) - 8) / 4 for i in range(ELEMENTS)]


def qkv_header(extra="", q=None, k=None, v=None, metadata=None):
    """The good trace's header with q, k, v entries replaceable by text."""
    parts = []
    if metadata is not None:
        parts.append('"__metadata__": ' + metadata)
    parts.append('"layers.0.q": ' + (q or entry("F32", [H, N, D], 0, QKV_BYTES)))
    parts.append('"layers.0.k": ' + (k or entry("F32", [H, N, D], QKV_BYTES, 2 * QKV_BYTES)))
    parts.append('"layers.0.v": ' + (v or entry("F32", [H, N, D], 2 * QKV_BYTES, 3 * QKV_BYTES)))
    if extra:
        parts.append(extra)
    return "{" + ", ".join(parts) + "}"


def qkv_data(q=None):
    return f32(q or qkv_values("q")) + f32(qkv_values("k")) + f32(qkv_values("v"))


GOOD_TRACE = safetensors(qkv_header(metadata='{"model": "bad-corpus-good", "causal": "false"}'), qkv_data())
GOOD_STATS = (json.dumps({"schema": "attnsim.stats/1", "cycles": {"total": 1000}, "energy_pj": {"total": 50.0},
                          "filter": {"filtered_ratio": 0.5, "exact_ratio": 0.5}, "quality": {}}, indent=1) + "\n").encode()


def nested(depth):
    return "[" * depth + "1" + "]" * depth


def config(body):
    return ('{"schema": "attnsim.config/1"' + (", " + body if body else "") + "}\n").encode("utf-8", "surrogateescape")


def sweep(body):
    return ('{"schema": "attnsim.sweep/1", "base": {"schema": "attnsim.config/1"}, "traces": ["good.safetensors"]'
            + (", " + body if body else "") + "}\n").encode()


# ---- the cases ----------------------------------------------------------------------------------
#
# file: the file (None: the case reads no file of its own); content: its bytes (None: the file must
# not exist; "dir": a directory); args: the command after `attnsim`, {file} and {out} replaced
# (out: a path in an empty scratch directory that must stay empty); exit; message: the line, {file}
# and {dir} (this directory, absolute) replaced, {*} any text; names: what the line must name when
# it is not the file (an option, a --set).

RUN = "run -j 1 --trace good.safetensors --out {out} "
RUN_THREADS = "run --trace good.safetensors --out {out} -j "
CASES = []


def case(file, content, args, exit_code, message, why, names=None):
    CASES.append({"file": file, "content": content, "args": args, "exit": exit_code, "message": message,
                  "why": why, **({"names": names} if names else {})})


# -- configs: attnsim run --config FILE (class config, 3)
def config_case(name, content, message, why, exit_code=CONFIG, names=None):
    case(name, content, RUN + "--config {file}", exit_code, message, why, names)


config_case("config-empty.json", b"",
            "attnsim: {file}: not valid JSON: parse error at line 1, column 1: syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal",
            "an empty file")
config_case("config-truncated.json", config("")[:-8],
            "attnsim: {file}: not valid JSON: parse error at line 1, column 24: syntax error while parsing value - invalid string: missing closing quote; last read: '\"attnsim.con'",
            "a file cut short")
config_case("config-not-object.json", b"[1, 2]\n",
            "attnsim: {file}: the config must be a JSON object, got [1,2]", "wrong JSON type at the root")
config_case("config-missing-schema.json", b'{"qk_unit": {"lanes": 8}}\n',
            'attnsim: {file}: missing schema (expected "schema": "attnsim.config/1")', "no schema")
config_case("config-wrong-schema.json", b'{"schema": "attnsim.config/2"}\n',
            'attnsim: {file}: schema: must be "attnsim.config/1", got "attnsim.config/2"', "a schema it does not know")
config_case("config-unknown-key.json", config('"qk_unit": {"lanse": 8}'),
            "attnsim: {file}: qk_unit.lanse: unknown key (did you mean 'lanes'?)", "a typo in a key")
config_case("config-unknown-section.json", config('"qk_unti": {"lanes": 8}'),
            "attnsim: {file}: qk_unti: unknown key (did you mean 'qk_unit'?)", "a typo in a section")
config_case("config-duplicate-key.json", config('"qk_unit": {"lanes": 8, "lanes": 16}'),
            "attnsim: {file}: qk_unit.lanes: duplicate key", "a key given twice (the last would win silently)")
config_case("config-duplicate-section.json", config('"qk_unit": {"lanes": 8}, "qk_unit": {"bits": 4}'),
            "attnsim: {file}: qk_unit: duplicate key", "a section given twice")
config_case("config-wrong-type.json", config('"qk_unit": {"lanes": "many"}'),
            'attnsim: {file}: qk_unit.lanes: must be an integer, got "many"', "a string for an integer")
config_case("config-not-integer.json", config('"qk_unit": {"lanes": 2.5}'),
            "attnsim: {file}: qk_unit.lanes: must be an integer, got 2.5", "a fraction for an integer")
config_case("config-section-not-object.json", config('"qk_unit": 8'),
            "attnsim: {file}: qk_unit: must be an object, got 8", "a number for a section")
config_case("config-out-of-range.json", config('"qk_unit": {"lanes": 0}'),
            "attnsim: {file}: qk_unit.lanes: must be >= 1, got 0", "below the range")
config_case("config-implausible.json", config('"qk_unit": {"lanes": 100000000}'),
            "attnsim: {file}: qk_unit.lanes: must be <= 65536, got 100000000", "above the plausible range")
config_case("config-clock-tiny.json", config('"clock_ghz": 1e-300'),
            "attnsim: {file}: clock_ghz: must be >= 0.001, got 1e-300", "a clock that gives energies of 1e307 pJ")
config_case("config-number-overflow.json", config('"comparator": {"gamma": 1e309}'),
            "attnsim: {file}: comparator.gamma: number out of range (not a finite double): 1e309",
            "a number beyond a double")
config_case("config-nan.json", config('"comparator": {"gamma": NaN}'),
            "attnsim: {file}: not valid JSON: parse error at line 1, column 56: syntax error while parsing value - invalid literal; last read: '\"gamma\": N'",
            "NaN is not JSON")
config_case("config-bad-utf8.json", config('"description": "caf\udce9"'),
            "attnsim: {file}: not valid JSON: parse error at line 1, column 52: syntax error while parsing value - invalid string: ill-formed UTF-8 byte; last read: '\"caf\\xe9\"'",
            "a Latin-1 byte in a string")
config_case("config-deep.json", config('"comparator": {"gamma": ' + nested(1000) + "}"),
            "attnsim: {file}: comparator.gamma: nested deeper than 64 levels", "a value nested 1000 deep")
config_case("config-bad-choice.json", config('"qk_unit": {"mode": "fast"}'),
            'attnsim: {file}: qk_unit.mode: must be one of "dense", "latte", "early_term", got "fast"', "not one of the choices")
config_case("config-cross-field.json", config('"qk_unit": {"bits": 4, "estimate_bits": 6}'),
            "attnsim: {file}: qk_unit.estimate_bits: must be <= qk_unit.bits (4), got 6", "P > B")
config_case("config-per-head-mismatch.json", config('"comparator": {"gamma": [0.1, 0.2, 0.3]}'),
            "attnsim: {file}: comparator.gamma: has 3 values, the trace has 2 heads", "wrong for the trace at hand")
config_case("config-tech-absent.json", config('"energy": {"tech": "absent-tech.json"}'),
            "attnsim: absent-tech.json: cannot open technology table", "a technology table that is not there", IO,
            names="absent-tech.json")
config_case("config-tech-bad.json", config('"energy": {"tech": "tech-bad.json"}'),
            "attnsim: tech-bad.json: node_nm: must be > 0, got -45", "a technology table out of range",
            names="tech-bad.json")
case("tech-bad.json", b'{"schema": "attnsim.tech/1", "name": "bad", "node_nm": -45}\n',
     RUN + "--set energy.tech={file}", CONFIG, "attnsim: {file}: node_nm: must be > 0, got -45", "the table through --set")
case("config-absent.json", None, RUN + "--config {file}", IO, "attnsim: {file}: cannot open config file", "no such file")

# -- --set values (class config, 3); files hold the override, for bytes a manifest cannot
case("set-bad-utf8.txt", b"qk_unit.lanes=\x95", RUN + '--set "$(cat {file})"', CONFIG,
     "attnsim: --set qk_unit.lanes: value is not valid UTF-8 (byte 0x95 at offset 0)",
     "a Latin-1 byte in a --set value", names="--set qk_unit.lanes")
case("set-deep.txt", ("comparator.gamma=" + nested(1000)).encode(), RUN + '--set "$(cat {file})"', CONFIG,
     "attnsim: --set comparator.gamma: nested deeper than 64 levels", "a --set value nested 1000 deep",
     names="--set comparator.gamma")
case("set-overflow.txt", b"comparator.gamma=-1e400", RUN + '--set "$(cat {file})"', CONFIG,
     "attnsim: --set comparator.gamma: number out of range (not a finite double): -1e400", "a --set number beyond a double",
     names="--set comparator.gamma")
case("set-newline-key.txt", b"qk_unit.la\nnes=3", RUN + '--set "$(cat {file})"', CONFIG,
     "attnsim: --set qk_unit.la\\x0anes: unknown key (did you mean 'lanes'?)", "a newline in a key stays on one line",
     names="--set qk_unit.la")

# -- traces: attnsim trace info FILE (class trace, 4), run for what loading a layer finds
def trace_case(name, content, message, why, exit_code=TRACE, args="trace info {file}"):
    case(name, content, args, exit_code, message, why)


trace_case("trace-empty.safetensors", b"", "attnsim: {file}: file is 0 bytes, shorter than the 8-byte header length",
           "an empty file")
trace_case("trace-header-length-huge.safetensors", safetensors("{}", length=2 ** 64 - 1),
           "attnsim: {file}: header length 18446744073709551615 exceeds the file (10 bytes): file is shorter than its header says",
           "a header length that lies")
trace_case("trace-truncated.safetensors", GOOD_TRACE[:len(GOOD_TRACE) - 100],
           "attnsim: {file}: layers.0.v: data_offsets [512,768] reach past the end of the data section (668 bytes): file is shorter than its header says",
           "a file cut short")
trace_case("trace-header-not-json.safetensors", safetensors("{not json"), "attnsim: {file}: header is not JSON",
           "a header that is not JSON")
trace_case("trace-header-not-object.safetensors", safetensors("[1, 2]"), "attnsim: {file}: header is not a JSON object",
           "wrong JSON type at the root")
trace_case("trace-header-bad-utf8.safetensors", safetensors(qkv_header(metadata='{"model": "caf\udce9"}'), qkv_data()),
           "attnsim: {file}: header is not JSON", "a Latin-1 byte in the header")
trace_case("trace-deep-shape.safetensors", safetensors(qkv_header(q='{"dtype": "F32", "shape": ' + nested(1000) +
                                                                     ', "data_offsets": [0, 256]}'), qkv_data()),
           "attnsim: {file}: layers.0.q.shape: nested deeper than 64 levels", "a shape nested 1000 deep")
trace_case("trace-duplicate-tensor.safetensors",
           safetensors(qkv_header(extra='"layers.0.q": ' + entry("F32", [H, N, D], 0, QKV_BYTES)), qkv_data()),
           "attnsim: {file}: layers.0.q: duplicate key", "a tensor given twice")
trace_case("trace-duplicate-field.safetensors",
           safetensors(qkv_header(q='{"dtype": "F32", "dtype": "F16", "shape": [2, 8, 4], "data_offsets": [0, 256]}'), qkv_data()),
           "attnsim: {file}: layers.0.q.dtype: duplicate key", "a field given twice")
trace_case("trace-lying-offsets.safetensors",
           safetensors(qkv_header(q=entry("F32", [H, N, D], 0, 128)), qkv_data()),
           "attnsim: {file}: layers.0.q: data_offsets [0,128] span 128 bytes but shape [2,8,4] x F32 needs 256",
           "offsets that do not match the shape")
trace_case("trace-begin-after-end.safetensors",
           safetensors(qkv_header(q=entry("F32", [H, N, D], 256, 0)), qkv_data()),
           "attnsim: {file}: layers.0.q: data_offsets [256,0] has begin > end", "offsets the wrong way round")
trace_case("trace-overlap.safetensors",
           safetensors(qkv_header(k=entry("F32", [H, N, D], 0, QKV_BYTES)), qkv_data()),
           "attnsim: {file}: layers.0.q: data_offsets [0,256] overlap those of layers.0.k ([0,256])",
           "two tensors on the same bytes")
trace_case("trace-hole.safetensors",
           safetensors(qkv_header(v=entry("F32", [H, N, D], 3 * QKV_BYTES, 4 * QKV_BYTES)), qkv_data() + bytes(QKV_BYTES)),
           "attnsim: {file}: layers.0.v: data_offsets [768,1024] leave bytes 512..768 of the data section to no tensor",
           "bytes between tensors that belong to none")
trace_case("trace-trailing-bytes.safetensors", safetensors(qkv_header(), qkv_data() + b"polyglot"),
           "attnsim: {file}: data section: bytes 768..776 belong to no tensor (the last, layers.0.v, ends at 768)",
           "bytes after the last tensor")
trace_case("trace-negative-shape.safetensors", safetensors(qkv_header(q=entry("F32", [-2, N, D], 0, QKV_BYTES)), qkv_data()),
           "attnsim: {file}: layers.0.q: shape [-2,8,4] is not a list of non-negative integers", "a negative dimension")
trace_case("trace-float-shape.safetensors", safetensors(qkv_header(q=entry("F32", [2.5, N, D], 0, QKV_BYTES)), qkv_data()),
           "attnsim: {file}: layers.0.q: shape [2.5,8,4] is not a list of non-negative integers", "a fractional dimension")
trace_case("trace-huge-shape.safetensors",
           safetensors(qkv_header(q=entry("F32", [2 ** 62, 2 ** 62, D], 0, QKV_BYTES)), qkv_data()),
           "attnsim: {file}: layers.0.q: shape [4611686018427387904,4611686018427387904,4] is too large",
           "a shape whose element count overflows")
trace_case("trace-shape-not-list.safetensors",
           safetensors(qkv_header(q='{"dtype": "F32", "shape": "2x8x4", "data_offsets": [0, 256]}'), qkv_data()),
           "attnsim: {file}: layers.0.q: missing field shape (a list of non-negative integers)", "wrong JSON type for a shape")
trace_case("trace-dtype-f64.safetensors", safetensors(qkv_header(q=entry("F64", [H, N, D // 2], 0, QKV_BYTES)), qkv_data()),
           "attnsim: {file}: layers.0.q: unsupported dtype F64 (supported: I8, U8, F16, BF16, F32)", "a dtype attnsim does not read")
trace_case("trace-dtype-number.safetensors",
           safetensors(qkv_header(q='{"dtype": 32, "shape": [2, 8, 4], "data_offsets": [0, 256]}'), qkv_data()),
           "attnsim: {file}: layers.0.q: missing string field dtype", "wrong JSON type for a dtype")
trace_case("trace-dtype-u8.safetensors",
           safetensors(qkv_header(q=entry("U8", [H, N, D * 4], 0, QKV_BYTES)), qkv_data()),
           "attnsim: {file}: layers.0.q: dtype U8 not allowed for q/k/v (expected I8, F16, BF16 or F32)", "a dtype wrong for q")
trace_case("trace-rank-2.safetensors", safetensors(qkv_header(q=entry("F32", [N * H, D], 0, QKV_BYTES)), qkv_data()),
           "attnsim: {file}: layers.0.q: expected rank 3 [H, tokens, d], got rank 2 [16, 4]", "a matrix where a rank-3 tensor belongs")
trace_case("trace-empty-layer.safetensors",
           safetensors('{"layers.0.q": %s, "layers.0.k": %s, "layers.0.v": %s}' % (
               entry("F32", [H, 0, D], 0, 0), entry("F32", [H, N, D], 0, QKV_BYTES), entry("F32", [H, N, D], QKV_BYTES, 2 * QKV_BYTES)),
               f32(qkv_values("k")) + f32(qkv_values("v"))),
           "attnsim: {file}: layers.0.q: layer has no tokens (N = 0)", "a layer without queries")
trace_case("trace-no-heads.safetensors",
           safetensors('{"layers.0.q": %s, "layers.0.k": %s, "layers.0.v": %s}' % (
               entry("F32", [0, N, D], 0, 0), entry("F32", [0, N, D], 0, 0), entry("F32", [0, N, D], 0, 0))),
           "attnsim: {file}: layers.0.q: layer has no heads (H = 0)", "a layer without heads")
trace_case("trace-no-layers.safetensors", safetensors('{"embeddings": %s}' % entry("F32", [2], 0, 8), f32([1, 2])),
           "attnsim: {file}: no layers (a trace needs at least layers.0.q, layers.0.k, layers.0.v)", "no attention tensors")
trace_case("trace-missing-k.safetensors",
           safetensors('{"layers.0.q": %s, "layers.0.v": %s}' % (entry("F32", [H, N, D], 0, QKV_BYTES),
                                                                 entry("F32", [H, N, D], QKV_BYTES, 2 * QKV_BYTES)),
                       f32(qkv_values("q")) + f32(qkv_values("v"))),
           "attnsim: {file}: layers.0.k: missing (layers must be numbered 0..L-1 without gaps, each with q, k, v)", "no k")
trace_case("trace-unknown-tensor.safetensors",
           safetensors(qkv_header(extra='"layers.0.w": ' + entry("F32", [1], 3 * QKV_BYTES, 3 * QKV_BYTES + 4)), qkv_data() + f32([1])),
           "attnsim: {file}: layers.0.w: unknown tensor (known per-layer tensors: q, k, v, skim_keep, tree.{h}.w, tree.{h}.b, lsh.{h}.proj, performer.{h}.w, hidden, skim_predictor.{ln1,fc1,ln2,fc2}.{weight,bias})",
           "a tensor name under layers. attnsim does not know")
trace_case("trace-metadata-not-string.safetensors", safetensors(qkv_header(metadata='{"model": 7}'), qkv_data()),
           "attnsim: {file}: __metadata__.model is not a string (safetensors metadata maps strings to strings)",
           "wrong JSON type in the metadata")
trace_case("trace-causal-bad.safetensors", safetensors(qkv_header(metadata='{"causal": "yes"}'), qkv_data()),
           "attnsim: {file}: metadata causal = 'yes': expected \"true\" or \"false\"", "a causal flag that is neither")
trace_case("trace-i8-no-scale.safetensors",
           safetensors('{"layers.0.q": %s, "layers.0.k": %s, "layers.0.v": %s}' % (
               entry("I8", [H, N, D], 0, ELEMENTS), entry("I8", [H, N, D], ELEMENTS, 2 * ELEMENTS),
               entry("I8", [H, N, D], 2 * ELEMENTS, 3 * ELEMENTS)), bytes(3 * ELEMENTS)),
           "attnsim: {file}: layers.0.q: I8 tensor needs metadata scale.0.q (its dequantization scale)", "I8 without scales")
trace_case("trace-nan.safetensors", safetensors(qkv_header(), qkv_data(q=[float("nan")] + qkv_values("q")[1:])),
           "attnsim: {file}: layers.0.q: NaN at index [0, 0, 0]", "a NaN, found when the layer is loaded",
           args=RUN.replace("good.safetensors", "{file}"))
trace_case("trace-inf.safetensors", safetensors(qkv_header(), qkv_data(q=qkv_values("q")[:37] + [float("inf")] + qkv_values("q")[38:])),
           "attnsim: {file}: layers.0.q: Inf at index [1, 1, 1]", "an Inf, found when the layer is loaded",
           args=RUN.replace("good.safetensors", "{file}"))
trace_case("trace-absent.safetensors", None, "attnsim: {file}: cannot open: No such file or directory", "no such file", IO)
trace_case("trace-directory.safetensors", "dir", "attnsim: {file}: not a regular file", "a directory where a file belongs", IO)

# -- sweep files: attnsim sweep FILE --dry-run (class config, 3)
def sweep_case(name, content, message, why, exit_code=CONFIG):
    case(name, content, "sweep {file} --dry-run", exit_code, message, why)


sweep_case("sweep-not-json.json", b'{"schema": "attnsim.sweep/1",\n',
           "attnsim: {file}: not valid JSON: parse error at line 2, column 1: syntax error while parsing object key - unexpected end of input; expected string literal",
           "a file cut short")
sweep_case("sweep-unknown-key.json", sweep('"grids": {}'),
           "attnsim: {file}: grids: unknown key (schema, description, base, set, baseline, traces, grid, zip, skip_if)", "a typo")
sweep_case("sweep-duplicate-key.json", sweep('"grid": {"qk_unit.lanes": [8], "qk_unit.lanes": [16]}'),
           "attnsim: {file}: grid.qk_unit.lanes: duplicate key", "a swept key given twice")
sweep_case("sweep-deep-grid.json", sweep('"grid": {"qk_unit.lanes": [' + nested(1000) + "]}"),
           "attnsim: {file}: grid.qk_unit.lanes: nested deeper than 64 levels", "a grid value nested 1000 deep")
sweep_case("sweep-traces-not-list.json",
           b'{"schema": "attnsim.sweep/1", "base": {"schema": "attnsim.config/1"}, "traces": "good.safetensors"}\n',
           "attnsim: {file}: traces: must be a non-empty list of trace paths", "wrong JSON type")
sweep_case("sweep-not-config-key.json", sweep('"grid": {"qk_unit.lanez": [8]}'),
           "attnsim: {file}: grid.qk_unit.lanez: not a config key (section.key or a top-level key; see docs/config.md)",
           "a swept key that is no config key")
sweep_case("sweep-zip-lengths.json", sweep('"zip": {"qk_unit.lanes": [8, 16], "qk_unit.bits": [8]}'),
           "attnsim: {file}: zip.qk_unit.bits: has 1 values, zip.qk_unit.lanes has 2 (zip lists must have equal lengths)",
           "zip lists of different lengths")
sweep_case("sweep-number-overflow.json", sweep('"grid": {"comparator.gamma": [0.1, 1e999]}'),
           "attnsim: {file}: grid.comparator.gamma[1]: number out of range (not a finite double): 1e999", "a number beyond a double")
sweep_case("sweep-trace-absent.json",
           b'{"schema": "attnsim.sweep/1", "base": {"schema": "attnsim.config/1"}, "traces": ["absent.safetensors"]}\n',
           "attnsim: {file}: traces[0]: {dir}/absent.safetensors: cannot open: No such file or directory",
           "a trace that is not there", IO)

# -- stats files: attnsim compare FILE good-stats.json (class trace: input data, 4)
def stats_case(name, content, message, why):
    case(name, content, "compare {file} good-stats.json", TRACE, message, why)


stats_case("stats-not-json.json", b'{"schema": "attnsim.stats/1", "cycles": {"total": 1000}\n',
           "attnsim: compare: {file}: not valid JSON: parse error at line 2, column 1: syntax error while parsing object - unexpected end of input; expected '}'",
           "a file cut short")
stats_case("stats-wrong-schema.json", b'{"schema": "attnsim.config/1"}\n',
           'attnsim: compare: {file}: schema: expected "attnsim.stats/1"', "a config given as stats")
stats_case("stats-missing-cycles.json", b'{"schema": "attnsim.stats/1", "energy_pj": {"total": 1}}\n',
           "attnsim: compare: {file}: cycles.total: must be a number, got nothing", "a number compare prints is missing")
stats_case("stats-wrong-type.json",
           b'{"schema": "attnsim.stats/1", "cycles": {"total": "many"}, "energy_pj": {"total": 1}, "filter": {"filtered_ratio": 0, "exact_ratio": 1}}\n',
           'attnsim: compare: {file}: cycles.total: must be a number, got "many"', "wrong JSON type")
stats_case("stats-deep.json", ('{"schema": "attnsim.stats/1", "cycles": ' + nested(1000) + "}\n").encode(),
           "attnsim: compare: {file}: cycles: nested deeper than 64 levels", "nested 1000 deep")

# -- the command line (class usage, 2): no file of their own; the line names the option
def usage_case(args, message, names, why):
    case(None, None, args, USAGE, message, why, names=names)


usage_case(RUN_THREADS + "-1", "attnsim: run: --threads: must be in 0..1024 (0: one per core), got -1", "--threads", "negative threads")
usage_case(RUN_THREADS + "100000", "attnsim: run: --threads: must be in 0..1024 (0: one per core), got 100000", "--threads",
           "a hundred thousand threads")
usage_case("sweep sweep-unknown-key.json --dry-run -j 0", "attnsim: sweep: --jobs: must be in 1..1024, got 0", "--jobs", "no jobs")
usage_case(RUN + "--bogus", "attnsim: run: unrecognised option '--bogus'", "--bogus", "an unknown option")
usage_case("run --out {out}", "attnsim: run: --trace is required", "--trace", "no trace")
usage_case(RUN + "--max-memory lots", "attnsim: run: --max-memory: expected a size such as 512MiB, 8GiB or unlimited, got 'lots'",
           "--max-memory", "a size that is no size")
usage_case(RUN + "--vcd {out} --trace-layers 3", "attnsim: --trace-layers '3': good.safetensors has 1 layers (0 to 0)",
           "--trace-layers", "a window past the last layer")
usage_case("trace dump good.safetensors layers.0.z", "attnsim: good.safetensors: layers.0.z: no such tensor (did you mean 'layers.0.k'?)",
           "layers.0.z", "an unknown tensor")

# -- runs refused (class simulation, 5)
case(None, None, RUN + "--max-memory 1KiB", SIMULATION,
     "attnsim: good.safetensors: the run needs an estimated {*}, more than the memory cap of 1.00 KiB (--max-memory)",
     "a run over the memory cap", names="good.safetensors")

# -- output that cannot be written (class I/O, 6)
case(None, None, "run -j 1 --trace good.safetensors --out good.safetensors/stats.json", IO,
     "attnsim: good.safetensors/stats.json: cannot create its directory: Not a directory", "--out inside a file",
     names="good.safetensors/stats.json")

# ---- writing ------------------------------------------------------------------------------------

SUPPORT = {"good.safetensors": GOOD_TRACE, "good-stats.json": GOOD_STATS}


def manifest():
    cases = []
    for c in CASES:
        m = {k: c[k] for k in ("file", "args", "exit", "message", "why") if k in c}
        if c["content"] is None and c["file"]:
            m["absent"] = True
        if "names" in c:
            m["names"] = c["names"]
        cases.append(m)
    return (json.dumps({"schema": "attnsim.bad-corpus/1", "cases": cases}, indent=1, ensure_ascii=False) + "\n").encode()


def wanted():
    """Every file of the directory this script writes: path -> bytes (None: a directory)."""
    files = dict(SUPPORT)
    for c in CASES:
        if c["file"] and c["content"] is not None:
            files[c["file"]] = None if c["content"] == "dir" else c["content"]
    files["manifest.json"] = manifest()
    return files


def main():
    check = "--check" in sys.argv[1:]
    differ = []
    for name, content in sorted(wanted().items()):
        path = os.path.join(HERE, name)
        if content is None:  # a directory, kept in git by a README inside
            content, path = b"A directory where attnsim expects a trace file (make_bad.py).\n", os.path.join(path, "README")
        if check:
            try:
                with open(path, "rb") as f:
                    same = f.read() == content
            except OSError:
                same = False
            if not same:
                differ.append(name)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
    if check and differ:
        print("make_bad.py: differs from what it writes: " + ", ".join(differ), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
