#pragma once
// Energy = action counts x a per-action table (Accelergy), plus static power x time.
// A technology table (configs/tech/*.json, built into the binary) gives primitive
// energies with their sources, SRAM access energy against capacity, DRAM energy per bit,
// the recipe of each unit action in primitives, and each module's static power at a
// stated reference size, scaled to the configured size (docs/energy.md).
#include "core/activity.h"
#include "core/cycles.h"
#include "core/errors.h"
#include "core/params.h"

#include <nlohmann/json.hpp>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnsim {

struct EnergyParams {
  std::string tech;
  double node_scale;

  static const ParamTable<EnergyParams>& table() {
    static const ParamTable<EnergyParams> t{
        "energy", "Technology table that turns action counts into energy.",
        {field(&EnergyParams::tech, "tech", "45nm")
             .doc("Built-in table name (configs/tech/NAME.json) or a path to a table file."),
         field(&EnergyParams::node_scale, "node_scale", 1.0)
             .doc("Multiplies every dynamic and static energy (technology scaling).")
             .min(plausible::kScaleMin).max(plausible::kScaleMax)}};
    return t;
  }
};

// Class config (a technology table is part of the config), or io for a table file that
// cannot be read (core/errors.h).
class EnergyError : public Error {
 public:
  explicit EnergyError(const std::string& message, ErrorClass c = ErrorClass::config) : Error(c, message) {}
};

struct TechTable {
  std::string name;
  double node_nm = 45;
  std::map<std::string, double> primitive_pj;                // "int8_add" -> 0.03
  std::vector<std::pair<double, double>> sram_64bit_pj;      // (KiB, pJ) sorted by KiB
  double dram_pj_per_bit = 0;
  // module -> action -> {primitive -> multiplicity}
  std::map<std::string, std::map<std::string, std::map<std::string, double>>> actions;
  std::map<std::string, double> static_mw;                   // module -> mW at the reference size

  // How a module's static power follows the config. A module without an entry here has
  // fixed static power (static_mw as is).
  struct StaticScaling {
    // Resolved-config key -> the value static_mw was quoted at ("qk_unit.lanes" -> 64):
    // static = mW x product over the keys of (configured value / reference value).
    std::map<std::string, double> at;
    // Value of the config key "<module>.type" -> mW replacing static_mw for that type
    // (same `at` sizes), e.g. bit_parallel QK lanes hold whole int8 multipliers.
    std::map<std::string, double> mw_by_type;
    bool operator==(const StaticScaling& o) const { return at == o.at && mw_by_type == o.mw_by_type; }
  };
  std::map<std::string, StaticScaling> static_scaling;       // module -> scaling

  // `name_or_path`: a built-in table name ("45nm") or a path to a JSON table.
  // Throws EnergyError naming the table and the JSON path of a bad entry.
  static TechTable load(const std::string& name_or_path);
  static TechTable parse(const nlohmann::json& j, const std::string& origin);
};

// Energy of one access of `width_bits` to an SRAM (bank) of `kib` KiB: the 64-bit
// access energy interpolated linearly in log(energy) vs log(capacity) between the
// table's points (extrapolated with the end segments' slopes), scaled by width/64.
double sram_access_pj(const TechTable& t, double kib, int width_bits);

// The storage geometry the derived primitives depend on, and the resolved config the
// static power scales with.
struct EnergyContext {
  // Defaults: the default config's geometry (1024 KiB / 64 banks x 128 bit; two segments of
  // 4096 x 32 bit / 16 banks); the run fills these from the config (energy_context in
  // sim/stats.cpp).
  double sram_bank_kib = 16;        // capacity of one SRAM bank
  int sram_width_bits = 128;
  double reuse_bank_kib = 2;        // capacity of one reuse-buffer bank (two segments)
  int reuse_width_bits = 32;
  double node_scale = 1.0;
  Clock clock{1.0};
  Cycles total{0};                  // run length, for static energy
  // The resolved config (Config::resolved), read by the static scaling keys ("at",
  // "<module>.type"). Null: no config; then only modules with fixed static power work.
  nlohmann::json config;
  // Per module, a factor on its static power the run decides (the QK unit's lane_width / d:
  // the table's estimate is for lanes a whole head dimension wide). Absent: 1.
  std::map<std::string, double> static_factor;
};

struct ModuleEnergy {
  double dynamic_pj = 0;
  double static_pj = 0;
};

// Energy of one action of `module` in pJ (before node_scale). Derived primitives:
// "sram_access" (sram_access_pj of one SRAM bank), "reuse_access" (one reuse-buffer
// bank), "dram_bit". Throws EnergyError when the table has no recipe for the action.
double action_pj(const TechTable& t, const EnergyContext& ctx, const std::string& module,
                 const std::string& action);

// Static power of `module` in mW (before node_scale) at the sizes of ctx.config:
// static_mw (or mw_by_type[<module>.type]) x product over `at` of (configured / reference).
// Throws EnergyError naming static_mw.<module>... when the entry is missing or a key
// is not a number in the config.
double static_power_mw(const TechTable& t, const EnergyContext& ctx, const std::string& module);

// Per module: dynamic = sum(count x action_pj) x node_scale;
// static = static_power_mw x (total cycles / clock_ghz) ns x node_scale (1 mW x 1 ns = 1 pJ).
std::map<std::string, ModuleEnergy> compute_energy(const TechTable& t,
                                                   const std::vector<ModuleActivity>& modules,
                                                   const EnergyContext& ctx);

// configs/tech/*.json compiled in (generated by sim/embed_tech.cmake).
const std::map<std::string, std::string>& builtin_tech_tables();

}  // namespace attnsim
