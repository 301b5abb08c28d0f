#pragma once
// SVG pictures in tests: parsed with libxml2 (well-formed, root <svg>), their texts and the
// number of their raster panels (<image> elements).

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "support/cli_test.h"

namespace zflow::testing {

/// Parses an SVG file with libxml2: well-formed, root <svg>; returns every <text> content.
inline std::vector<std::string> svg_texts(const std::filesystem::path& path,
                                          int* images = nullptr) {
  const std::string text = file_bytes(path);
  xmlDocPtr doc = xmlReadMemory(text.data(), static_cast<int>(text.size()), "figure.svg", nullptr,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  EXPECT_NE(doc, nullptr) << path << " is not well-formed XML";
  std::vector<std::string> texts;
  if (doc == nullptr) return texts;
  xmlNodePtr root = xmlDocGetRootElement(doc);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(root->name)), "svg");
  int image_count = 0;
  std::vector<xmlNodePtr> stack{root};
  while (!stack.empty()) {
    xmlNodePtr node = stack.back();
    stack.pop_back();
    for (xmlNodePtr child = node->children; child; child = child->next) {
      if (child->type != XML_ELEMENT_NODE) continue;
      const std::string name(reinterpret_cast<const char*>(child->name));
      if (name == "text") {
        xmlChar* content = xmlNodeGetContent(child);
        texts.emplace_back(reinterpret_cast<const char*>(content));
        xmlFree(content);
      }
      if (name == "image") ++image_count;
      stack.push_back(child);
    }
  }
  xmlFreeDoc(doc);
  if (images) *images = image_count;
  return texts;
}

inline bool has_text(const std::vector<std::string>& texts, const std::string& part) {
  for (const auto& t : texts) {
    if (t.find(part) != std::string::npos) return true;
  }
  return false;
}

}  // namespace zflow::testing
