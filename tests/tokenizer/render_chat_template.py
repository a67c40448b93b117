"""Renders the chat_template of a tokenizer_config.json with Jinja2 the way transformers' apply_chat_template does
(sandboxed, trim_blocks, lstrip_blocks, bos_token/eos_token from the config) and prints the prompt.

    python3 render_chat_template.py TOKENIZER_CONFIG MESSAGES_JSON   (add_generation_prompt=True)

Used by trained_oracle_test.sh to check the templates `holdfast tokenizer train` writes in the real Jinja engine.
"""
import json
import sys

from jinja2.sandbox import ImmutableSandboxedEnvironment


def token(config, key):
    t = config.get(key)
    return t["content"] if isinstance(t, dict) else t


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        config = json.load(f)
    messages = json.loads(sys.argv[2])
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(config["chat_template"])
    sys.stdout.write(template.render(messages=messages, add_generation_prompt=True,
                                     bos_token=token(config, "bos_token"), eos_token=token(config, "eos_token")))


if __name__ == "__main__":
    main()
