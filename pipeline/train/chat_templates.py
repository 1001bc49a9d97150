"""Chat templates a base model can be taught (it has none of its own): `train.chat_template: NAME`. The one
chosen is saved with the merged model, so the GGUF and every runtime interface chat in that format."""

from __future__ import annotations

# ChatML (Qwen, SmolLM2): <|im_start|>role ... <|im_end|>; the special tokens must exist in the vocabulary.
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# Gemma's turns, whose markers the base Gemma vocabularies already hold: <start_of_turn>user|model ...
# <end_of_turn>; a system message goes at the top of the first user turn, as Gemma's own template puts it.
GEMMA = ("{{ bos_token }}{% set ns = namespace(system='') %}{% for message in messages %}"
         "{% if message['role'] == 'system' %}{% set ns.system = message['content'] + '\\n\\n' %}"
         "{% else %}{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else 'user') + '\\n' + "
         "(ns.system if message['role'] == 'user' else '') + message['content'] | trim + '<end_of_turn>\\n' }}"
         "{% set ns.system = '' %}{% endif %}{% endfor %}"
         "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}")

CHAT_TEMPLATES = {"chatml": CHATML, "gemma": GEMMA}


def chat_template(choice: str) -> str:
    """A shipped template by name, or the Jinja text itself."""
    return CHAT_TEMPLATES.get(choice, choice)
