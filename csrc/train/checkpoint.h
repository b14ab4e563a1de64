// Checkpoint directories that are either complete or ignored: root/checkpoint-00000100/ holds the
// state files, each written atomically (core/util/atomic_file.h), and the marker file COMPLETE,
// written last. A run killed at any moment (mid-file, between files, before the marker) leaves a
// directory without the marker, which resume skips and the next save removes. keep_last bounds how
// many complete ones stay.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace unime::train {

inline constexpr const char* kCompleteMarker = "COMPLETE";

std::string checkpoint_path(const std::string& root, int64_t step);

// The complete checkpoints under `root`, oldest first (by step).
std::vector<std::string> complete_checkpoints(const std::string& root);
std::optional<std::string> latest_checkpoint(const std::string& root);
bool is_complete(const std::string& dir);

// Creates checkpoint_path(root, step), lets `write_files(dir)` write the state into it (each file
// atomically: write_safetensors or core::write_file_atomic), then writes the marker; removes
// incomplete directories under root, and the oldest complete ones beyond `keep_last` (0: keep all).
// Returns the directory.
std::string write_checkpoint(const std::string& root, int64_t step,
                             const std::function<void(const std::string& dir)>& write_files, int64_t keep_last);

// The two halves of write_checkpoint, for several writers (every rank adds its own files between
// them): begin removes incomplete directories and creates the step's; complete writes the marker
// and applies keep_last.
std::string begin_checkpoint(const std::string& root, int64_t step);
void complete_checkpoint(const std::string& root, int64_t step, int64_t keep_last);

std::string read_file(const std::string& path);

}  // namespace unime::train
