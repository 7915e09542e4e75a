// "Did you mean" suggestions (core/did_you_mean.h): config keys and tensor names.
#include "core/did_you_mean.h"

#include <catch2/catch.hpp>

using namespace attnsim;

TEST_CASE("edit distance counts an adjacent transposition as one edit") {
  CHECK(edit_distance("lanse", "lanes") == 1);
  CHECK(edit_distance("", "abc") == 3);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("same", "same") == 0);
}

TEST_CASE("did_you_mean picks the nearest name within two edits or sharing a prefix") {
  const std::vector<std::string> tensors = {"layers.0.q", "layers.0.k", "layers.0.v", "layers.0.skim_keep"};
  CHECK(did_you_mean("layers.0.qq", tensors) == "layers.0.q");
  CHECK(did_you_mean("layers.0.skim", tensors) == "layers.0.skim_keep");  // a prefix
  CHECK(did_you_mean("layres.0.v", tensors) == "layers.0.v");
  CHECK(did_you_mean("embeddings.word", tensors).empty());
  CHECK(did_you_mean("x", {}).empty());
}
