"""Builds the tiny model the real-vLLM tests serve: a Llama config small enough for one CPU core,
generation config, and a byte-level BPE tokenizer trained on a seeded synthetic corpus, with a
chat template. No weights: vLLM starts it with `--load-format dummy` (random weights), so its
text is gibberish while its metrics, prefix cache, KV events, errors and streaming are real.

Beside it, OUT_DIR-lora: a LoRA adapter of the model (PEFT layout, rank 8 on q_proj and v_proj,
seeded random weights), which a server loads with `--enable-lora --lora-modules NAME=PATH`.

Usage: python build-tiny-model.py OUT_DIR. Deterministic and idempotent: a model already built
with the same recipe (see RECIPE) is left as it is.
"""

import json
import random
import sys
from pathlib import Path

RECIPE = 'tiny-llama-v1'
VOCAB_SIZE = 4096
MAX_MODEL_LEN = 4096
SPECIAL_TOKENS = ['<s>', '</s>', '<pad>']

CONFIG = {
    'architectures': ['LlamaForCausalLM'],
    'model_type': 'llama',
    'hidden_size': 256,
    'intermediate_size': 512,
    'num_hidden_layers': 4,
    'num_attention_heads': 4,
    'num_key_value_heads': 2,
    'head_dim': 64,
    'hidden_act': 'silu',
    'max_position_embeddings': MAX_MODEL_LEN,
    'rms_norm_eps': 1e-5,
    'rope_theta': 10000.0,
    'vocab_size': VOCAB_SIZE,
    'bos_token_id': 0,
    'eos_token_id': 1,
    'pad_token_id': 2,
    'tie_word_embeddings': True,
    'torch_dtype': 'bfloat16',
}

# Roles in angle brackets, each message closed by the end-of-sequence token: the template every
# chat request of the tests goes through (vLLM renders it; the router never does).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def corpus(seed: int = 20261202, lines: int = 4000):
    """Pseudo-English lines from a fixed syllable set: enough variety for a 4k-token BPE."""
    rng = random.Random(seed)
    syllables = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'ze', 'pa', 'qu', 'ish',
                 'an', 'er', 'on', 'st', 'th', 'ing', 'ed', 'ly', 'the', 'and', 'of', 'to']
    words = [''.join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(1500)]
    words += ['system', 'user', 'assistant', 'You', 'are', 'a', 'helpful', 'question', 'answer',
              'Hello', 'world', 'prompt', 'document', 'section', 'summarise', 'the', 'following']
    punctuation = ['.', ',', '?', '!', ':', ';']
    for _ in range(lines):
        n = rng.randint(5, 30)
        text = ' '.join(rng.choice(words) for _ in range(n))
        yield text[0].upper() + text[1:] + rng.choice(punctuation) + f' {rng.randint(0, 9999)}'


def build_tokenizer(out: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    tokenizer.save(str(out / 'tokenizer.json'))


LORA_RANK = 8


def build_lora(out: Path, base: Path):
    """A PEFT LoRA adapter for every layer's q_proj and v_proj, small seeded random weights."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(20261205)
    hidden = CONFIG['hidden_size']
    outputs = {'q_proj': CONFIG['num_attention_heads'] * CONFIG['head_dim'],
               'v_proj': CONFIG['num_key_value_heads'] * CONFIG['head_dim']}
    tensors = {}
    for layer in range(CONFIG['num_hidden_layers']):
        for module, width in outputs.items():
            prefix = f'base_model.model.model.layers.{layer}.self_attn.{module}'
            tensors[f'{prefix}.lora_A.weight'] = torch.randn(LORA_RANK, hidden, generator=generator) * 0.01
            tensors[f'{prefix}.lora_B.weight'] = torch.randn(width, LORA_RANK, generator=generator) * 0.01
    save_file(tensors, str(out / 'adapter_model.safetensors'))
    (out / 'adapter_config.json').write_text(json.dumps({
        'peft_type': 'LORA',
        'task_type': 'CAUSAL_LM',
        'base_model_name_or_path': str(base),
        'r': LORA_RANK,
        'lora_alpha': 2 * LORA_RANK,
        'lora_dropout': 0.0,
        'target_modules': sorted(outputs),
        'bias': 'none',
        'fan_in_fan_out': False,
        'modules_to_save': None,
        'use_rslora': False,
        'use_dora': False,
    }, indent=2))


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else '.vllm/model')
    stamp = out / '.recipe'
    lora = out.parent / f'{out.name}-lora'
    if not (lora / 'adapter_model.safetensors').exists():
        build_lora(lora, out)
        print(f'build-tiny-model: built {lora}')
    if stamp.exists() and stamp.read_text() == RECIPE and (out / 'tokenizer.json').exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / 'config.json').write_text(json.dumps(CONFIG, indent=2))
    (out / 'generation_config.json').write_text(json.dumps(
        {'bos_token_id': 0, 'eos_token_id': 1, 'pad_token_id': 2}, indent=2))
    build_tokenizer(out)
    (out / 'tokenizer_config.json').write_text(json.dumps({
        'tokenizer_class': 'PreTrainedTokenizerFast',
        'bos_token': '<s>',
        'eos_token': '</s>',
        'pad_token': '<pad>',
        'add_bos_token': False,
        'model_max_length': MAX_MODEL_LEN,
        'chat_template': CHAT_TEMPLATE,
    }, indent=2))
    (out / 'special_tokens_map.json').write_text(json.dumps(
        {'bos_token': '<s>', 'eos_token': '</s>', 'pad_token': '<pad>'}, indent=2))
    stamp.write_text(RECIPE)
    print(f'build-tiny-model: built {out}')


if __name__ == '__main__':
    main()
