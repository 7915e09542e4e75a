// `attnsim trace synth`, `attnsim trace info` and `attnsim trace dump` (see docs/traces.md).
#include "sim/cli/commands.h"
#include "sim/cli/errors.h"

#include "core/did_you_mean.h"
#include "core/file_io.h"
#include "workloads/safetensors.h"
#include "workloads/synth.h"
#include "workloads/trace.h"

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace po = boost::program_options;

namespace attnsim {

namespace {

// A mistake on the command line (UsageError, core/errors.h) as opposed to a failure while
// doing the work, which keeps its own class.
int fail(const std::string& message) { return usage_error(message); }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

const std::vector<HeadPattern>& all_patterns() {
  static const std::vector<HeadPattern> all = {HeadPattern::Peaked, HeadPattern::Local,
                                               HeadPattern::Diagonal, HeadPattern::Uniform};
  return all;
}

std::string patterns_text(const std::vector<HeadPattern>& patterns) {
  std::string out;
  for (HeadPattern p : patterns.empty() ? all_patterns() : patterns)
    out += (out.empty() ? "" : ",") + std::string(head_pattern_name(p));
  return out;
}

std::vector<HeadPattern> parse_patterns(const std::string& text) {
  std::vector<HeadPattern> out;
  std::stringstream in(text);
  std::string name;
  while (std::getline(in, name, ',')) {
    if (name.empty()) throw UsageError("--patterns: empty pattern name in '" + text + "'");
    try {
      out.push_back(parse_head_pattern(lower(name)));
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--patterns: ") + e.what());
    }
  }
  if (out.empty()) throw UsageError("--patterns: no pattern given");
  return out;
}

DType parse_dtype(const std::string& text) {
  const std::string t = lower(text);
  if (t == "f32") return DType::F32;
  if (t == "f16") return DType::F16;
  if (t == "bf16") return DType::BF16;
  if (t == "i8") return DType::I8;
  throw UsageError("--dtype: unknown dtype '" + text + "' (expected f16, f32, bf16 or i8)");
}

uint64_t parse_seed(const std::string& text) {
  const bool digits = !text.empty() && text.size() <= 20 &&
                      std::all_of(text.begin(), text.end(),
                                  [](unsigned char c) { return std::isdigit(c) != 0; });
  if (digits) {
    errno = 0;
    char* end = nullptr;
    const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (errno == 0 && *end == '\0') return static_cast<uint64_t>(v);
  }
  throw UsageError("--seed: expected an integer in 0..18446744073709551615, got '" + text + "'");
}

// Parses argv (argv[0] is the sub-subcommand's name) against `options`, with optional
// positional arguments.
po::variables_map parse(int argc, char** argv, const po::options_description& options,
                        const po::positional_options_description& positional) {
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(options).positional(positional).run(), vm);
  po::notify(vm);
  return vm;
}

// ---------------------------------------------------------------------------------------
// trace synth

struct SynthArgs {
  SynthOptions options;
  std::string out, seed, dtype, patterns;
};

po::options_description synth_options(SynthArgs& a) {
  const SynthOptions defaults;  // every default below comes from here
  SynthOptions& o = a.options;
  po::options_description d("options");
  d.add_options()
      ("out", po::value<std::string>(&a.out)->value_name("T.safetensors"),
       "output trace file (required; written atomically)")
      ("layers", po::value<int>(&o.layers)->default_value(defaults.layers), "layers L")
      ("heads", po::value<int>(&o.heads)->default_value(defaults.heads), "heads H per layer")
      ("tokens", po::value<int>(&o.tokens)->default_value(defaults.tokens),
       "tokens N = M (1..1000000)")
      ("head-dim", po::value<int>(&o.head_dim)->default_value(defaults.head_dim), "head dimension d")
      ("seed", po::value<std::string>(&a.seed)->default_value(std::to_string(defaults.seed)),
       "random seed (unsigned 64-bit); same options and seed give identical bytes")
      ("dtype", po::value<std::string>(&a.dtype)->default_value(lower(dtype_name(defaults.dtype))),
       "tensor dtype: f16, f32, bf16 or i8 (i8: one scale per layer and tensor, in the metadata)")
      ("causal", po::bool_switch(&o.causal)->default_value(defaults.causal),
       "mark the trace causal (decoder self-attention: query i sees keys 0..i)")
      ("patterns", po::value<std::string>(&a.patterns)->default_value(patterns_text(defaults.patterns)),
       "comma-separated head patterns, cycled over the heads: peaked, local, diagonal, uniform")
      ("temperature", po::value<double>(&o.temperature)->default_value(defaults.temperature),
       "softmax temperature: < 1 sharper, > 1 flatter (ignored with --entropy-target)")
      ("entropy-target", po::value<double>(&o.entropy_target)->default_value(defaults.entropy_target),
       "if > 0: per head, scale q so the mean row entropy is this fraction (0..1) of its "
       "maximum (log M; causal: mean of log(i+1))")
      ("skim-keep", po::value<double>(&o.skim_keep)->default_value(defaults.skim_keep),
       "if > 0: write cumulative Transkimmer keep masks layers.{l}.skim_keep keeping about "
       "skim-keep^l of the tokens at layer l (token 0 always)")
      ("predictor", po::bool_switch(&o.predictor)->default_value(defaults.predictor),
       "also write per layer the hidden states layers.{l}.hidden [N, H*d] and Transkimmer "
       "predictor weights layers.{l}.skim_predictor.* (for skim_controller.source = "
       "\"predictor\")")
      ("predictor-keep", po::value<double>(&o.predictor_keep)->default_value(defaults.predictor_keep),
       "with --predictor: F such that each layer's predictor keeps 1 + round(F x (n - 1)) of "
       "the n tokens that reach it (token 0 always)")
      ("trees", po::value<int>(&o.tree_depth)->default_value(defaults.tree_depth),
       "if > 0: write Treeformer trees of this depth D per layer and head, "
       "layers.{l}.tree.{h}.w [2^D-1, d] and .b (Gaussian splits through the median of the keys)")
      ("lsh", po::value<int>(&o.lsh_rounds)->default_value(defaults.lsh_rounds),
       "if > 0: write this many Gaussian LSH directions per layer and head, layers.{l}.lsh.{h}.proj")
      ("performer", po::value<int>(&o.performer_features)->default_value(defaults.performer_features),
       "if > 0 (even): write a Gaussian Performer matrix of m/2 rows per layer and head, "
       "layers.{l}.performer.{h}.w")
      ("model", po::value<std::string>(&o.model)->default_value(defaults.model),
       "metadata 'model'")
      ("help,h", "show this help");
  return d;
}

void print_synth_help(std::ostream& os, const po::options_description& d) {
  os << "usage: attnsim trace synth --out T.safetensors [options]\n\n"
        "Writes a deterministic synthetic trace: per layer q, k, v [H, N, d] whose attention\n"
        "has a recognizable shape per head (peaked, local, diagonal, uniform).\n\n"
     << d;
}

int trace_synth(int argc, char** argv) {
  SynthArgs a;
  const po::options_description d = synth_options(a);
  po::variables_map vm;
  try {
    vm = parse(argc, argv, d, po::positional_options_description());
  } catch (const po::error& e) {
    return fail(std::string("trace synth: ") + e.what());
  }
  if (vm.count("help")) {
    print_synth_help(std::cout, d);
    return 0;
  }
  try {
    if (a.out.empty()) throw UsageError("--out is required (see attnsim trace synth --help)");
    a.options.seed = parse_seed(a.seed);
    a.options.dtype = parse_dtype(a.dtype);
    a.options.patterns = parse_patterns(a.patterns);
    write_synthetic_trace(a.options, a.out);
  } catch (const UsageError& e) {
    return fail(std::string("trace synth: ") + e.what());
  } catch (const TraceError& e) {
    return report_error(e);
  } catch (const std::invalid_argument& e) {  // the options, checked by the generator
    return fail(std::string("trace synth: ") + e.what());
  } catch (const std::exception& e) {
    return report_error(e, a.out + ": ");
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------------------
// trace info

nlohmann::ordered_json trace_json(const Trace& trace) {
  nlohmann::ordered_json j;
  j["trace"] = trace.path();
  j["sha256"] = trace.sha256();
  j["model"] = trace.model();
  j["causal"] = trace.causal();
  j["layers"] = nlohmann::ordered_json::array();
  for (int l = 0; l < trace.layers(); ++l) {
    const LayerShape& s = trace.shape(l);
    j["layers"].push_back({{"index", l}, {"heads", s.heads}, {"n", s.n}, {"m", s.m},
                           {"d", s.d}, {"dtype", dtype_name(s.dtype)}});
  }
  j["tensors"] = nlohmann::ordered_json::object();
  for (const auto& kv : trace.file().tensors())
    j["tensors"][kv.first] = {{"dtype", dtype_name(kv.second.dtype)}, {"shape", kv.second.shape}};
  j["metadata"] = nlohmann::ordered_json::object();
  for (const auto& kv : trace.metadata()) j["metadata"][kv.first] = kv.second;
  return j;
}

int trace_info(int argc, char** argv) {
  std::string path;
  po::options_description d("options");
  d.add_options()
      ("json", "print a JSON object (trace, sha256, model, causal, layers, tensors, metadata)")
      ("help,h", "show this help");
  po::options_description hidden;
  hidden.add_options()("trace", po::value<std::string>(&path));
  po::options_description all;
  all.add(d).add(hidden);
  po::positional_options_description positional;
  positional.add("trace", 1);
  po::variables_map vm;
  try {
    vm = parse(argc, argv, all, positional);
  } catch (const po::error& e) {
    return fail(std::string("trace info: ") + e.what());
  }
  if (vm.count("help")) {
    std::cout << "usage: attnsim trace info T.safetensors [--json]\n\n"
                 "Prints the layers, heads, shapes, dtypes and metadata of a trace.\n\n"
              << d;
    return 0;
  }
  if (path.empty()) return fail("trace info: missing trace file (see attnsim trace info --help)");
  try {
    const Trace trace(path);
    if (vm.count("json"))
      std::cout << trace_json(trace).dump(2) << "\n";
    else
      std::cout << describe_trace(trace);
  } catch (const TraceError& e) {
    return report_error(e);
  } catch (const std::exception& e) {
    return report_error(e, path + ": ");
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------------------
// trace dump

// A debugging and testing tool: one tensor's values fit comfortably in a JSON text.
constexpr uint64_t kDumpMaxElements = uint64_t{1} << 26;

// The tensor `name` of `file`, or a one-line error naming both (with a did-you-mean).
const TensorInfo& tensor_to_dump(const SafetensorsFile& file, const std::string& name) {
  if (file.has(name)) return file.info(name);
  std::vector<std::string> names;
  for (const auto& kv : file.tensors()) names.push_back(kv.first);
  const std::string suggestion = did_you_mean(name, names);
  throw UsageError(file.path() + ": " + name + ": no such tensor" +
                   (suggestion.empty() ? "" : " (did you mean '" + suggestion + "'?)"));
}

// {"trace", "tensor", "dtype", "shape", "values"}: the values exactly as the simulator's
// reader decodes them (SafetensorsFile::read_float_into), floats as the double equal to
// the decoded float (nlohmann prints the shortest text that reads back to it), I8 and U8
// as integers.
nlohmann::ordered_json dump_json(const SafetensorsFile& file, const TensorInfo& t) {
  const uint64_t elements = t.elements();
  if (elements > kDumpMaxElements)
    throw UsageError(file.path() + ": " + t.name + ": " + std::to_string(elements) +
                     " elements, more than trace dump prints (2^26)");
  std::vector<float> values(elements);
  file.read_float_into(t, 0, elements, values.data());
  const bool integral = t.dtype == DType::I8 || t.dtype == DType::U8;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  list.get_ref<nlohmann::ordered_json::array_t&>().reserve(elements);
  for (const float v : values) {
    if (integral)
      list.push_back(static_cast<int64_t>(v));
    else
      list.push_back(static_cast<double>(v));
  }
  nlohmann::ordered_json j;
  j["trace"] = file.path();
  j["tensor"] = t.name;
  j["dtype"] = dtype_name(t.dtype);
  j["shape"] = t.shape;
  j["values"] = std::move(list);
  return j;
}

int trace_dump(int argc, char** argv) {
  std::string path, tensor, out;
  po::options_description d("options");
  d.add_options()
      ("out", po::value<std::string>(&out)->value_name("F.json"),
       "write the JSON to this file (atomically) instead of stdout")
      ("help,h", "show this help");
  po::options_description hidden;
  hidden.add_options()("trace", po::value<std::string>(&path))("tensor", po::value<std::string>(&tensor));
  po::options_description all;
  all.add(d).add(hidden);
  po::positional_options_description positional;
  positional.add("trace", 1).add("tensor", 1);
  po::variables_map vm;
  try {
    vm = parse(argc, argv, all, positional);
  } catch (const po::error& e) {
    return fail(std::string("trace dump: ") + e.what());
  }
  if (vm.count("help")) {
    std::cout << "usage: attnsim trace dump T.safetensors TENSOR [--out F.json]\n\n"
                 "Prints one tensor as the simulator's reader decodes it, as JSON: trace, tensor,\n"
                 "dtype, shape and values (flat, row-major; F16, BF16 and F32 values as the exact\n"
                 "decoded float, I8 and U8 as integers). At most 2^26 elements.\n\n"
              << d;
    return 0;
  }
  if (path.empty() || tensor.empty())
    return fail("trace dump: expected a trace file and a tensor name (see attnsim trace dump --help)");
  std::string text;
  try {
    const SafetensorsFile file(path);
    text = dump_json(file, tensor_to_dump(file, tensor)).dump() + "\n";
  } catch (const Error& e) {  // usage (the tensor), trace or io
    return report_error(e);
  } catch (const std::exception& e) {
    return report_error(e, path + ": ");
  }
  if (out.empty()) {
    std::cout << text;
    return 0;
  }
  try {
    write_file_atomically(out, text);
  } catch (const std::exception& e) {  // the message names the file
    return report_error(e, "trace dump: --out: ");
  }
  return 0;
}

void print_trace_usage(std::ostream& os) {
  os << "usage: attnsim trace <subcommand> [options]\n\n"
        "subcommands:\n"
        "  synth   write a synthetic trace (attnsim trace synth --help)\n"
        "  info    print layers, heads, shapes, dtypes and metadata of a trace\n"
        "          (attnsim trace info --help)\n"
        "  dump    print one tensor's values as the simulator reads them, as JSON\n"
        "          (attnsim trace dump --help)\n";
}

}  // namespace

int cmd_trace(int argc, char** argv) {
  if (argc < 2) {
    print_trace_usage(std::cerr);
    return exit_code(ErrorClass::usage);
  }
  const std::string sub = argv[1];
  if (sub == "--help" || sub == "-h" || sub == "help") {
    print_trace_usage(std::cout);
    return 0;
  }
  if (sub == "synth") return trace_synth(argc - 1, argv + 1);
  if (sub == "info") return trace_info(argc - 1, argv + 1);
  if (sub == "dump") return trace_dump(argc - 1, argv + 1);
  return fail("trace: unknown subcommand '" + sub + "' (expected synth, info or dump; try attnsim trace --help)");
}

}  // namespace attnsim
