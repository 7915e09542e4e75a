# Writes a C++ file holding every configs/tech/*.json as a string, keyed by file stem.
set(body "#include <map>\n#include <string>\nnamespace attnsim {\nconst std::map<std::string, std::string>& builtin_tech_tables() {\n  static const std::map<std::string, std::string> tables = {\n")
foreach(f ${TABLES})
  get_filename_component(stem ${f} NAME_WE)
  file(READ ${f} content)
  string(APPEND body "    {\"${stem}\", R\"attnsim_json(${content})attnsim_json\"},\n")
endforeach()
string(APPEND body "  };\n  return tables;\n}\n}  // namespace attnsim\n")
file(WRITE ${OUT} "${body}")
