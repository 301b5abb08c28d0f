#include "zflow/io/table.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <limits>
#include <optional>
#include <ostream>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include "zflow/core/error.h"
#include "zflow/io/atomic_file.h"

namespace zflow::io {
namespace {

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && lower(s.substr(s.size() - suffix.size())) == suffix;
}

/// The text of a field for an error message: quoted and cut to a readable length.
std::string quote_field(std::string_view s) {
  std::string out = "\"";
  if (s.size() > 40) {
    out.append(s.substr(0, 40));
    out += "...";
  } else {
    out.append(s);
  }
  out += "\"";
  return out;
}

std::string delimiter_name(char d) {
  switch (d) {
    case ',':
      return "','";
    case '\t':
      return "tab";
    case ' ':
      return "space";
    case ';':
      return "';'";
    default:
      return std::string("'") + d + "'";
  }
}

/// Reads a whole file, or standard input for "-".
std::string read_input(const std::string& path) {
  if (path == "-") {
    std::string data((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (std::cin.bad()) throw IOError("cannot read standard input");
    return data;
  }
  return read_file(path);
}

std::string display_name(const std::string& path) { return path == "-" ? "<stdin>" : path; }

// ---------------------------------------------------------------------------------------
// CSV reading
// ---------------------------------------------------------------------------------------

/// One field of a CSV line.
struct Field {
  std::string text;
  bool quoted = false;
};

/// Parses `text` as a whole number with std::strtod. Returns nullopt if it is not a number
/// (empty, trailing garbage); NaN and Inf are returned as such and checked by the caller.
std::optional<double> parse_number(const std::string& text) {
  if (text.empty()) return std::nullopt;
  const char* begin = text.c_str();
  // strtod skips leading white space, which the caller has already trimmed; refuse any
  // left (e.g. a field that is only blanks) so that "full consumption" is strict.
  if (is_blank(*begin) || *begin == '\n') return std::nullopt;
  char* end = nullptr;
  errno = 0;
  double value = std::strtod(begin, &end);
  if (end == begin || *end != '\0') return std::nullopt;
  // ERANGE on overflow yields +-HUGE_VAL, which the finiteness check rejects; on underflow
  // the result is a (sub)normal or zero, which is the best representable value.
  return value;
}

/// Splits one line into fields. A field may be enclosed in double quotes (then it may hold
/// the delimiter, and "" stands for one quote). With delimiter ' ', runs of blanks separate
/// fields and leading/trailing blanks are ignored. Returns false on an unterminated quote.
bool split_line(std::string_view line, char delimiter, std::vector<Field>& fields,
                size_t& error_column) {
  fields.clear();
  const bool whitespace_mode = delimiter == ' ';
  auto is_delimiter = [&](char c) { return whitespace_mode ? is_blank(c) : c == delimiter; };
  if (whitespace_mode) line = trim(line);
  size_t i = 0;
  const size_t n = line.size();
  while (true) {
    // Skip blanks before the field (not the delimiter itself when it is a tab).
    while (i < n && is_blank(line[i]) && line[i] != delimiter) ++i;
    Field field;
    if (i < n && line[i] == '"') {
      const size_t start = i;
      field.quoted = true;
      ++i;
      bool closed = false;
      while (i < n) {
        if (line[i] == '"') {
          if (i + 1 < n && line[i + 1] == '"') {
            field.text += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        field.text += line[i++];
      }
      if (!closed) {
        error_column = start + 1;
        return false;
      }
      if (!whitespace_mode) {
        while (i < n && is_blank(line[i]) && line[i] != delimiter) ++i;
      }
      if (i < n && !is_delimiter(line[i])) {
        error_column = i + 1;
        return false;
      }
    } else {
      const size_t start = i;
      while (i < n && !is_delimiter(line[i])) ++i;
      field.text = std::string(trim(line.substr(start, i - start)));
    }
    fields.push_back(std::move(field));
    if (i >= n) break;
    // At a delimiter.
    ++i;
    if (whitespace_mode) {
      while (i < n && is_blank(line[i])) ++i;
    }
  }
  return true;
}

std::string csv_where(const std::string& path, size_t line, size_t column) {
  std::string out = display_name(path) + ", line " + std::to_string(line);
  if (column > 0) out += ", column " + std::to_string(column);
  return out;
}

/// `--header auto`: a first row of text only is a header, one of numbers only is data. A
/// row that mixes them is either a header with a numeric name or data with a typo (`1.O`),
/// and guessing silently loses a row or a column name: DataError asking to say which.
bool first_row_is_header(const std::vector<Field>& fields, const std::string& path,
                         size_t line_no) {
  std::optional<size_t> number, text;
  for (size_t j = 0; j < fields.size(); ++j) {
    if (fields[j].text.empty()) continue;  // neither: an empty name, or an empty value
    auto& slot = parse_number(fields[j].text) ? number : text;
    if (!slot) slot = j;
  }
  if (number && text) {
    throw DataError(csv_where(path, line_no, 0) + ": the first row mixes text (" +
                    quote_field(fields[*text].text) + " in column " + std::to_string(*text + 1) +
                    ") and numbers (" + quote_field(fields[*number].text) + " in column " +
                    std::to_string(*number + 1) +
                    "): say whether it is a header with --header yes or --header no");
  }
  return text.has_value() || !number.has_value();
}

// ---------------------------------------------------------------------------------------
// NPY
// ---------------------------------------------------------------------------------------

bool host_is_little_endian() {
  const uint16_t probe = 1;
  unsigned char first = 0;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

void byte_swap(char* data, size_t count, size_t item_size) {
  for (size_t i = 0; i < count; ++i) std::reverse(data + i * item_size, data + (i + 1) * item_size);
}

/// A private, copy-on-write mapping of a whole file (PROT_READ | PROT_WRITE, MAP_PRIVATE):
/// writes change the process's own copy of a page, never the file. Unmapped when destroyed,
/// unless handed to a tensor first.
class FileMapping {
 public:
  FileMapping() = default;
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;
  ~FileMapping() {
    if (base_ != nullptr) ::munmap(base_, length_);
  }

  /// Maps `path` when it is a non-empty regular file. Not mapped (the caller reads the file
  /// as a stream instead) for "-", a pipe, a device, an empty file, or where open or mmap
  /// fail; a failure to open is reported by that reading, with its usual message. Anything
  /// but a regular file is never opened here: a pipe opened twice would lose what its
  /// writer sent to the first reader.
  void map(const std::string& path) {
    struct stat st {};
    if (path == "-" || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
    // O_NONBLOCK: should the path have become a pipe since stat, opening it does not wait.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        static_cast<uint64_t>(st.st_size) <= std::numeric_limits<size_t>::max()) {
      const auto length = static_cast<size_t>(st.st_size);
      void* base = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (base != MAP_FAILED) base_ = base, length_ = length;
    }
    ::close(fd);  // the mapping keeps the file
  }

  bool mapped() const { return base_ != nullptr; }
  std::string_view bytes() const { return {static_cast<const char*>(base_), length_}; }

  /// Hints the kernel about the coming accesses (read ahead for a scan, or not); a hint only.
  void advise(int advice) const {
    if (base_ != nullptr) ::madvise(base_, length_, advice);
  }

  /// A float64 tensor of `sizes` over the mapped bytes from `offset`, which then owns the
  /// mapping: its deleter unmaps it once the tensor and all its views are gone. (Should
  /// from_blob throw, the mapping is left mapped rather than risk unmapping it twice.)
  at::Tensor into_tensor(size_t offset, at::IntArrayRef sizes) {
    void* const base = std::exchange(base_, nullptr);
    const size_t length = std::exchange(length_, 0);
    return at::from_blob(
        static_cast<char*>(base) + offset, sizes, [base, length](void*) { ::munmap(base, length); },
        at::TensorOptions().dtype(at::kDouble));
  }

 private:
  void* base_ = nullptr;
  size_t length_ = 0;
};

/// DataError for the value `v` (NaN or Inf) at flat index `i` of a table `cols` wide.
[[noreturn]] void throw_not_finite(const std::string& name, size_t i, int64_t cols, double v) {
  const size_t r = i / static_cast<size_t>(cols);
  const size_t c = i % static_cast<size_t>(cols);
  throw DataError(name + ", row " + std::to_string(r + 1) + ", column " + std::to_string(c + 1) +
                  ": " + (std::isnan(v) ? "NaN" : "Inf") + " is not allowed");
}

/// A minimal reader for the Python literal dict in a .npy header, e.g.
/// {'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::string path) : text_(text), path_(std::move(path)) {}

  struct Result {
    std::optional<std::string> descr;
    std::optional<bool> fortran_order;
    std::optional<std::vector<int64_t>> shape;
  };

  Result parse() {
    Result result;
    skip();
    expect('{');
    while (true) {
      skip();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      std::string key = parse_string();
      skip();
      expect(':');
      skip();
      if (key == "descr") {
        result.descr = parse_string();
      } else if (key == "fortran_order") {
        result.fortran_order = parse_bool();
      } else if (key == "shape") {
        result.shape = parse_tuple();
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip();
      expect('}');
      break;
    }
    return result;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw IOError(path_ + ": damaged .npy header (" + what + ")");
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string parse_string() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    ++pos_;
    const size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != q) ++pos_;
    if (pos_ >= text_.size()) fail("unterminated string");
    std::string s(text_.substr(start, pos_ - start));
    ++pos_;
    return s;
  }
  bool parse_bool() {
    if (text_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (text_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    fail("expected True or False");
  }
  std::vector<int64_t> parse_tuple() {
    std::vector<int64_t> dims;
    expect('(');
    while (true) {
      skip();
      if (peek() == ')') {
        ++pos_;
        break;
      }
      const size_t start = pos_;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
      // Python 2 era writers may add an 'L' suffix to long integers.
      const size_t digits_end = pos_;
      if (peek() == 'L') ++pos_;
      if (digits_end == start) fail("expected a non-negative integer in the shape");
      int64_t value = 0;
      auto [ptr, ec] = std::from_chars(text_.data() + start, text_.data() + digits_end, value);
      if (ec != std::errc() || ptr != text_.data() + digits_end) fail("shape entry out of range");
      dims.push_back(value);
      skip();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip();
      expect(')');
      break;
    }
    return dims;
  }

  std::string_view text_;
  std::string path_;
  size_t pos_ = 0;
};

template <typename T>
uint64_t load_le(const char* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}

/// Formats `value` like printf("%.*g", precision, value), independently of the locale.
void append_number(std::string& out, double value, int precision) {
  char buf[64];
  auto [ptr, ec] =
      std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::general, precision);
  if (ec != std::errc()) {
    // Cannot happen with 64 bytes; fall back to the C library.
    int n = std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
    out.append(buf, static_cast<size_t>(std::max(n, 0)));
    return;
  }
  out.append(buf, ptr);
}

/// A header cell for CSV output: quoted if it holds the delimiter, a quote or a blank edge.
std::string csv_header_cell(const std::string& name, char delimiter) {
  const bool needs_quotes = name.find(delimiter) != std::string::npos ||
                            name.find('"') != std::string::npos ||
                            name.find('\n') != std::string::npos ||
                            (!name.empty() && (is_blank(name.front()) || is_blank(name.back())));
  if (!needs_quotes) return name;
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

/// Brings a tensor to be written into [N, D] contiguous CPU form, float32 or float64.
at::Tensor prepare_for_writing(const at::Tensor& values, const std::string& path,
                               bool allow_1d_as_column) {
  if (!values.defined()) throw DataError("cannot write " + path + ": the tensor is undefined");
  at::Tensor t = values.detach().to(at::kCPU);
  if (t.dim() == 1 && allow_1d_as_column) t = t.reshape({t.size(0), 1});
  if (t.dim() != 2 && t.dim() != 1) {
    throw DataError("cannot write " + path + ": expected a 2-D tensor [N, D], got " +
                    std::to_string(t.dim()) + " dimensions");
  }
  if (t.scalar_type() != at::kFloat && t.scalar_type() != at::kDouble) {
    if (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16) {
      t = t.to(at::kFloat);
    } else if (t.is_complex()) {
      throw DataError("cannot write " + path + ": complex tensors are not supported");
    } else {
      t = t.to(at::kDouble);
    }
  }
  return t.contiguous();
}

/// The values of a contiguous float32/float64 CPU tensor as .npy stores them (little endian).
void write_npy_values(std::ostream& out, const at::Tensor& t) {
  const size_t item = t.scalar_type() == at::kFloat ? 4 : 8;
  const size_t bytes = static_cast<size_t>(t.numel()) * item;
  if (host_is_little_endian()) {
    out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(bytes));
    return;
  }
  std::string swapped(static_cast<const char*>(t.data_ptr()), bytes);
  byte_swap(swapped.data(), static_cast<size_t>(t.numel()), item);
  out.write(swapped.data(), static_cast<std::streamsize>(swapped.size()));
}

/// The .npy header of a C-order float32/float64 array of `shape` ("(3, 2)" or "(3,)").
std::string npy_header(bool f32, const std::string& shape) {
  std::string header = std::string("{'descr': '") + (f32 ? "<f4" : "<f8") +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Magic (6) + version (2) + header length (2) + header + '\n' must be a multiple of 64.
  const size_t unpadded = 10 + header.size() + 1;
  const size_t padded = (unpadded + 63) / 64 * 64;
  header.append(padded - unpadded, ' ');
  header += '\n';
  std::string out;
  out.append("\x93NUMPY", 6);
  out += static_cast<char>(1);
  out += static_cast<char>(0);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------

Table read_csv(const std::string& path, const CsvReadOptions& options) {
  const std::string header_mode = lower(options.header);
  if (header_mode != "auto" && header_mode != "yes" && header_mode != "no") {
    throw ConfigError("invalid CSV header option '" + options.header +
                      "' (expected auto, yes or no)");
  }
  const char delimiter = options.delimiter;
  if (delimiter == '\n' || delimiter == '\r' || delimiter == '"' || delimiter == '#' ||
      delimiter == '\0' || std::isdigit(static_cast<unsigned char>(delimiter)) ||
      delimiter == '.' || delimiter == '-' || delimiter == '+') {
    throw ConfigError("invalid CSV delimiter " + delimiter_name(delimiter));
  }

  const std::string name = display_name(path);
  const std::string content = read_input(path);
  std::string_view text(content);
  // A UTF-8 byte order mark, as some spreadsheet programs write.
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);

  Table table;
  std::vector<double> data;
  int64_t width = -1;
  int64_t rows = 0;
  bool first_row = true;
  size_t width_line = 0;  // line that fixed the width, for the ragged-row message
  std::vector<Field> fields;

  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string_view trimmed = trim(line);
    if (trimmed.empty() || trimmed.front() == '#') continue;

    size_t bad_column = 0;
    if (!split_line(line, delimiter, fields, bad_column)) {
      throw DataError(name + ", line " + std::to_string(line_no) + ", character " +
                      std::to_string(bad_column) + ": malformed quoted field");
    }
    const auto count = static_cast<int64_t>(fields.size());

    if (first_row) {
      first_row = false;
      bool is_header = header_mode == "yes";
      if (header_mode == "auto") is_header = first_row_is_header(fields, path, line_no);
      width = count;
      width_line = line_no;
      if (is_header) {
        for (Field& f : fields) table.columns.push_back(std::move(f.text));
        continue;
      }
    } else if (count != width) {
      throw DataError(csv_where(path, line_no, 0) + ": expected " + std::to_string(width) +
                      " fields (as on line " + std::to_string(width_line) + "), found " +
                      std::to_string(count) + " (ragged row; the delimiter is " +
                      delimiter_name(delimiter) + ")");
    }

    for (size_t j = 0; j < fields.size(); ++j) {
      const std::string& cell = fields[j].text;
      std::string where = csv_where(path, line_no, j + 1);
      if (j < table.columns.size() && !table.columns[j].empty()) {
        where += " (" + table.columns[j] + ")";
      }
      if (cell.empty()) throw DataError(where + ": empty field");
      std::optional<double> value = parse_number(cell);
      if (!value) {
        std::string hint;
        if (width == 1 && cell.find_first_of(",;\t ") != std::string::npos) {
          hint = " (is the delimiter " + delimiter_name(delimiter) + " right?)";
        }
        throw DataError(where + ": " + quote_field(cell) + " is not a number" + hint);
      }
      if (!std::isfinite(*value)) {
        throw DataError(where + ": " + quote_field(cell) +
                        " is not a finite number (NaN and Inf are not allowed)");
      }
      data.push_back(*value);
    }
    ++rows;
  }

  if (rows == 0) {
    throw DataError(name + ": no data rows" +
                    (table.columns.empty() ? std::string(" (the file is empty)")
                                           : std::string(" (only a header)")));
  }
  if (table.columns.empty()) table.columns.assign(static_cast<size_t>(width), std::string());

  table.values = at::empty({rows, width}, at::TensorOptions().dtype(at::kDouble));
  std::memcpy(table.values.data_ptr<double>(), data.data(), data.size() * sizeof(double));
  return table;
}

Table read_npy(const std::string& path) {
  const std::string name = display_name(path);
  FileMapping mapping;
  mapping.map(path);
  std::string read;  // the whole contents, where the file is not mapped
  if (!mapping.mapped()) read = read_input(path);
  const std::string_view content = mapping.mapped() ? mapping.bytes() : std::string_view(read);
  if (content.size() < 10 || content.compare(0, 6, "\x93NUMPY") != 0) {
    throw IOError(name + ": not a .npy file (bad magic; expected \\x93NUMPY)");
  }
  const int major = static_cast<unsigned char>(content[6]);
  const int minor = static_cast<unsigned char>(content[7]);
  size_t header_len = 0;
  size_t header_start = 0;
  if (major == 1) {
    header_len = static_cast<size_t>(load_le<uint16_t>(content.data() + 8));
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (content.size() < 12) throw IOError(name + ": truncated .npy header");
    header_len = static_cast<size_t>(load_le<uint32_t>(content.data() + 8));
    header_start = 12;
  } else {
    throw IOError(name + ": unsupported .npy format version " + std::to_string(major) + "." +
                  std::to_string(minor));
  }
  if (header_len > content.size() - header_start) {
    throw IOError(name + ": truncated .npy header (" + std::to_string(header_len) +
                  " bytes announced, " + std::to_string(content.size() - header_start) +
                  " present)");
  }
  const std::string_view header(content.data() + header_start, header_len);
  auto parsed = HeaderParser(header, name).parse();
  if (!parsed.descr || !parsed.fortran_order || !parsed.shape) {
    throw IOError(name + ": damaged .npy header (missing descr, fortran_order or shape)");
  }
  const std::string& descr = *parsed.descr;
  size_t item = 0;
  char kind = 0;
  if (descr == "<f8") {
    item = 8, kind = 'f';
  } else if (descr == "<f4") {
    item = 4, kind = 'f';
  } else if (descr == "<i8") {
    item = 8, kind = 'i';
  } else if (descr == "<i4") {
    item = 4, kind = 'i';
  } else {
    throw DataError(name + ": unsupported .npy dtype '" + descr +
                    "' (supported: <f4, <f8, <i4, <i8)");
  }
  if (*parsed.fortran_order) {
    throw DataError(name +
                    ": Fortran-order .npy arrays are not supported (save a C-order array, "
                    "e.g. with numpy.ascontiguousarray)");
  }
  const std::vector<int64_t>& shape = *parsed.shape;
  if (shape.empty() || shape.size() > 2) {
    throw DataError(name + ": expected a 1-D or 2-D array, got " + std::to_string(shape.size()) +
                    " dimensions");
  }
  const int64_t rows = shape[0];
  const int64_t cols = shape.size() == 2 ? shape[1] : 1;
  if (rows == 0 || cols == 0) {
    throw DataError(name + ": the array is empty (shape " + std::to_string(rows) + " x " +
                    std::to_string(cols) + ")");
  }
  const uint64_t limit = std::numeric_limits<int64_t>::max() / 8;
  if (static_cast<uint64_t>(rows) > limit / static_cast<uint64_t>(cols)) {
    throw IOError(name + ": damaged .npy header (shape too large)");
  }
  const size_t count = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  const size_t data_start = header_start + header_len;
  const size_t have = content.size() - data_start;
  if (have < count * item) {
    throw IOError(name + ": truncated .npy file (shape needs " + std::to_string(count * item) +
                  " bytes of data, found " + std::to_string(have) + ")");
  }

  Table table;
  table.columns.assign(static_cast<size_t>(cols), std::string());
  const char* in = content.data() + data_start;
  // Little-endian float64 at an aligned offset (npy headers pad to 64 bytes) is used where
  // it lies in the mapping. The finiteness check reads it once, in order; the pages are the
  // file's own and stay reclaimable, so memory is not bound by the size of the file.
  if (mapping.mapped() && kind == 'f' && item == 8 && host_is_little_endian() &&
      data_start % alignof(double) == 0) {
    mapping.advise(MADV_SEQUENTIAL);
    const auto* values = reinterpret_cast<const double*>(in);
    for (size_t i = 0; i < count; ++i) {
      if (!std::isfinite(values[i])) throw_not_finite(name, i, cols, values[i]);
    }
    mapping.advise(MADV_NORMAL);
    table.values = mapping.into_tensor(data_start, {rows, cols});
    return table;
  }

  // Other types, or a file that was read: converted into a tensor of its own.
  table.values = at::empty({rows, cols}, at::TensorOptions().dtype(at::kDouble));
  double* out = table.values.data_ptr<double>();
  for (size_t i = 0; i < count; ++i) {
    const char* p = in + i * item;
    double v = 0;
    if (kind == 'f' && item == 8) {
      const uint64_t bits = load_le<uint64_t>(p);
      std::memcpy(&v, &bits, 8);
    } else if (kind == 'f') {
      const auto bits = static_cast<uint32_t>(load_le<uint32_t>(p));
      float f = 0;
      std::memcpy(&f, &bits, 4);
      v = f;
    } else if (item == 8) {
      const uint64_t bits = load_le<uint64_t>(p);
      int64_t k = 0;
      std::memcpy(&k, &bits, 8);
      v = static_cast<double>(k);
    } else {
      const auto bits = static_cast<uint32_t>(load_le<uint32_t>(p));
      int32_t k = 0;
      std::memcpy(&k, &bits, 4);
      v = k;
    }
    if (!std::isfinite(v)) throw_not_finite(name, i, cols, v);
    out[i] = v;
  }
  return table;
}

Table read_table(const std::string& path, const CsvReadOptions& options) {
  if (ends_with(path, ".npy")) return read_npy(path);
  return read_csv(path, options);
}

std::optional<int64_t> find_column(const std::vector<std::string>& columns,
                                   const std::string& name) {
  std::vector<int64_t> found;
  for (size_t j = 0; j < columns.size(); ++j) {
    if (columns[j] == name) found.push_back(static_cast<int64_t>(j));
  }
  if (found.empty()) return std::nullopt;
  if (found.size() > 1) {
    std::string indices;
    for (size_t k = 0; k < found.size(); ++k) {
      indices += k == 0 ? "" : k + 1 == found.size() ? " and " : ", ";
      indices += std::to_string(found[k]);
    }
    throw ConfigError("the header has " + std::to_string(found.size()) + " columns named '" + name +
                      "' (indices " + indices + "): choose by index, or rename them");
  }
  return found.front();
}

std::vector<int64_t> parse_column_spec(const std::string& spec,
                                       const std::vector<std::string>& columns) {
  const auto width = static_cast<int64_t>(columns.size());
  std::vector<int64_t> out;
  if (trim(spec).empty()) {
    for (int64_t i = 0; i < width; ++i) out.push_back(i);
    return out;
  }
  auto parse_index = [](std::string_view s) -> std::optional<int64_t> {
    if (s.empty()) return std::nullopt;
    for (char c : s) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    }
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
    return v;
  };
  auto check = [&](int64_t index, std::string_view token) {
    if (index >= width) {
      throw ConfigError("column spec '" + spec + "': index " + std::to_string(index) + " in '" +
                        std::string(token) + "' is out of range (the table has " +
                        std::to_string(width) + " columns, 0-" + std::to_string(width - 1) + ")");
    }
  };
  auto add = [&](int64_t index) {
    if (std::find(out.begin(), out.end(), index) != out.end()) {
      throw ConfigError("column spec '" + spec + "': column " + std::to_string(index) +
                        " is selected twice");
    }
    out.push_back(index);
  };

  std::string_view rest(spec);
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view token = trim(rest.substr(0, comma));
    if (token.empty()) throw ConfigError("column spec '" + spec + "' has an empty entry");

    // An exact column name wins over the index syntax only when it is not a plain index.
    if (auto index = parse_index(token)) {
      check(*index, token);
      add(*index);
    } else if (const size_t dash = token.find('-'); dash != std::string_view::npos &&
                                                    parse_index(trim(token.substr(0, dash))) &&
                                                    parse_index(trim(token.substr(dash + 1)))) {
      const int64_t a = *parse_index(trim(token.substr(0, dash)));
      const int64_t b = *parse_index(trim(token.substr(dash + 1)));
      if (a > b) {
        throw ConfigError("column spec '" + spec + "': range '" + std::string(token) +
                          "' is empty (start after end)");
      }
      check(b, token);
      for (int64_t i = a; i <= b; ++i) add(i);
    } else {
      std::optional<int64_t> index;
      try {
        index = find_column(columns, std::string(token));
      } catch (const ConfigError& e) {
        throw ConfigError("column spec '" + spec + "': " + e.what());
      }
      if (!index) {
        std::string known;
        for (const auto& c : columns) {
          if (c.empty()) continue;
          known += known.empty() ? "" : ", ";
          known += c;
        }
        throw ConfigError(
            "column spec '" + spec + "': no column named '" + std::string(token) + "' (" +
            (known.empty() ? std::string("the table has no column names") : "columns: " + known) +
            ")");
      }
      add(*index);
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return out;
}

TableStream::TableStream(std::ostream& out, bool npy, int64_t rows, int64_t cols,
                         at::ScalarType dtype, const std::vector<std::string>& header)
    : out_(out), npy_(npy), rows_(rows), cols_(cols), dtype_(dtype) {
  if (dtype != at::kFloat && dtype != at::kDouble) {
    throw DataError("a table is written as float32 or float64, not " +
                    std::string(c10::toString(dtype)));
  }
  if (!header.empty() && static_cast<int64_t>(header.size()) != cols) {
    throw DataError(std::to_string(header.size()) + " header names for " + std::to_string(cols) +
                    " columns");
  }
  if (npy) {
    const std::string head = npy_header(
        dtype == at::kFloat, "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")");
    out_.write(head.data(), static_cast<std::streamsize>(head.size()));
    return;
  }
  // Leave out an all-empty header (the columns of a file read without one).
  if (std::any_of(header.begin(), header.end(), [](const std::string& s) { return !s.empty(); })) {
    std::string line;
    for (size_t j = 0; j < header.size(); ++j) {
      if (j > 0) line += ',';
      line += csv_header_cell(header[j], ',');
    }
    line += '\n';
    out_.write(line.data(), static_cast<std::streamsize>(line.size()));
  }
}

void TableStream::write(const at::Tensor& rows) {
  TORCH_CHECK(rows.dim() == 2 && rows.size(1) == cols_, "TableStream: expected rows [r, ", cols_,
              "], got ", rows.sizes());
  if (written_ + rows.size(0) > rows_) {
    throw DataError("more rows than the " + std::to_string(rows_) + " announced");
  }
  const at::Tensor t = rows.detach().to(at::kCPU, dtype_).contiguous();
  written_ += t.size(0);
  if (npy_) {
    write_npy_values(out_, t);
    check_stream();
    return;
  }
  const bool f32 = dtype_ == at::kFloat;
  const int precision = f32 ? 9 : 17;  // full round-trip precision
  const float* pf = f32 ? t.data_ptr<float>() : nullptr;
  const double* pd = f32 ? nullptr : t.data_ptr<double>();
  std::string buf;
  for (int64_t i = 0; i < t.size(0); ++i) {
    for (int64_t j = 0; j < cols_; ++j) {
      if (j > 0) buf += ',';
      const int64_t k = i * cols_ + j;
      append_number(buf, f32 ? static_cast<double>(pf[k]) : pd[k], precision);
    }
    buf += '\n';
    if (buf.size() > (1u << 16)) {
      out_.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      buf.clear();
    }
  }
  out_.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  check_stream();
}

void TableStream::check_stream() const {
  // Stop at the first failed piece (a full disk) rather than produce the rest for nothing.
  if (!out_) throw IOError("writing the table failed");
}

void TableStream::finish() const {
  if (written_ != rows_) {
    throw DataError(std::to_string(written_) + " rows written of the " + std::to_string(rows_) +
                    " announced");
  }
}

bool is_npy_path(const std::string& path) { return path != "-" && ends_with(path, ".npy"); }

void write_csv(const std::string& path, const at::Tensor& values,
               const std::vector<std::string>& header) {
  const at::Tensor t = prepare_for_writing(values, path, /*allow_1d_as_column=*/true);
  if (!header.empty() && static_cast<int64_t>(header.size()) != t.size(1)) {
    throw DataError("cannot write " + path + ": " + std::to_string(header.size()) +
                    " header names for " + std::to_string(t.size(1)) + " columns");
  }
  write_atomically(path, [&](std::ostream& os) {
    TableStream stream(os, /*npy=*/false, t.size(0), t.size(1), t.scalar_type(), header);
    stream.write(t);
  });
}

void write_npy(const std::string& path, const at::Tensor& values) {
  const at::Tensor t = prepare_for_writing(values, path, /*allow_1d_as_column=*/false);
  write_atomically(path, [&](std::ostream& os) {
    const std::string shape =
        t.dim() == 1 ? "(" + std::to_string(t.size(0)) + ",)"
                     : "(" + std::to_string(t.size(0)) + ", " + std::to_string(t.size(1)) + ")";
    const std::string head = npy_header(t.scalar_type() == at::kFloat, shape);
    os.write(head.data(), static_cast<std::streamsize>(head.size()));
    write_npy_values(os, t);
  });
}

void write_table(const std::string& path, const at::Tensor& values,
                 const std::vector<std::string>& header) {
  if (is_npy_path(path)) {
    write_npy(path, values);
  } else {
    write_csv(path, values, header);
  }
}

}  // namespace zflow::io
