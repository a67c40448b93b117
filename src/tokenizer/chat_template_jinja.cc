// The Jinja chat templates written into tokenizer_config.json by `holdfast tokenizer train`. V3's is the template
// of the DeepSeek-V3 tokenizer_config.json verbatim; R1's applies the two changes of MODEL-SPEC §8.2 to it.
// render_chat (chat_template.cc) reproduces both in C++.
#include <string>

#include "core/error.h"
#include "tokenizer/chat_template.h"

namespace holdfast::tokenizer {
namespace {

constexpr const char* kV3Template =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace("
    "is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}"
    "{% set ns.is_first_sp = false %}{%- else %}"
    "{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}"
    "{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}"
    "{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is none %}"
    "{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}"
    "{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + "
    "tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + "
    "'```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}"
    "{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + "
    "'\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}"
    "{%- set ns.is_tool = false -%}{%- else %}"
    "{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}"
    "{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}"
    "{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}";

void replace_once(std::string& s, std::string_view from, std::string_view to) {
  const size_t pos = s.find(from);
  HOLDFAST_CHECK(pos != std::string::npos && s.find(from, pos + 1) == std::string::npos,
                 "chat template fragment '{}' must occur exactly once", from);
  s.replace(pos, from.size(), to);
}

}  // namespace

std::string chat_template_jinja(ChatStyle style) {
  std::string t = kV3Template;
  if (style == ChatStyle::kR1) {
    // (a) Earlier assistant turns keep only what follows their last </think>.
    replace_once(t, "{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}",
                 "{% set content = message['content'] %}{% if '</think>' in content %}"
                 "{% set content = content.split('</think>')[-1] %}{% endif %}"
                 "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}");
    // (b) The generation prompt opens the reasoning block.
    replace_once(t, "{{'<｜Assistant｜>'}}{% endif %}", "{{'<｜Assistant｜><think>\n'}}{% endif %}");
  }
  return t;
}

}  // namespace holdfast::tokenizer
