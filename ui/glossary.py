"""One Korean term per concept: the glossary Learn shows, and tests/test_glossary.py holds
both catalogues to.

Each term says how to find the concept in an English msgid (`english_pattern`), what
its Korean translation must then contain (`korean_pattern`), and the Korean words no
translation may use for it (`forbidden`). Patterns are regular expressions; a term
without an `english_pattern` is shown but only its forbidden words are checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    concept: str  # a stable id
    english: str
    korean: str
    symbol: str = ""  # LaTeX-free, as the pages write it
    english_pattern: str | None = None  # finds the concept in an English msgid
    korean_pattern: str | None = None  # what the Korean must then contain; default: korean
    forbidden: tuple[str, ...] = ()  # Korean variants no msgstr may contain

    def in_english(self, text: str) -> bool:
        return bool(self.english_pattern and re.search(self.english_pattern, text, re.I))

    def in_korean(self, text: str) -> bool:
        return bool(re.search(self.korean_pattern or re.escape(self.korean), text))

    def forbidden_in(self, text: str) -> list[str]:
        return [found.group() for word in self.forbidden for found in re.finditer(word, text)]


TERMS: tuple[Term, ...] = (
    Term("recurrent_network", "recurrent neural network (RNN)", "순환 신경망", "RNN",
         r"\brecurrent (neural )?networks?\b", "순환 신경망", ("순환 네트워크",)),
    Term("network", "network", "신경망", "",
         r"\bnetworks?\b", "신경망", ("네트워크",)),
    Term("time_step", "time step", "시간 단계", "t",
         r"\btime steps?\b", "시간 단계", (r"\d+\s?스텝 동안", "타임 ?스텝")),
    Term("training_step", "training step", "스텝", "",
         r"\btraining steps?\b", "스텝"),
    Term("one_hot", "one-hot vector", "원-핫 벡터", "x_t",
         r"\bone-hot\b", "원-핫", ("원핫",)),
    Term("character", "character", "글자", "",
         r"\bchar(acter)?s?\b", "글자", (r"문자(?!열)",)),
    Term("hidden_state", "hidden state", "은닉 상태", "h_t",
         r"\bhidden states?\b", "은닉 상태", ("숨은 상태", "히든 상태", "은닉상태")),
    Term("cell_state", "cell state", "셀 상태", "c_t",
         r"\bcell states?\b", "셀 상태", ("셀상태", "기억 셀")),
    Term("input_gate", "input gate", "입력 게이트", "i_t",
         r"\binput gates?\b", "입력 게이트", ("입력게이트",)),
    Term("forget_gate", "forget gate", "망각 게이트", "f_t",
         r"\bforget gates?\b", "망각 게이트", ("망각게이트", "잊기 게이트", "삭제 게이트")),
    Term("output_gate", "output gate", "출력 게이트", "o_t",
         r"\boutput gates?\b", "출력 게이트", ("출력게이트",)),
    Term("candidate", "candidate", "후보 값", "g_t, n_t",
         r"\bcandidates?\b", "후보 값", (r"후보(?! 값)",)),
    Term("parameter", "parameter", "파라미터", "",
         r"parameters?\b", "파라미터", ("매개변수",)),
    Term("gradient", "gradient", "기울기", "∂L/∂h_t",
         r"\bgradients?\b", "기울기", ("그래디언트", "그라디언트", "경사")),
    Term("vanishing_gradient", "vanishing gradient", "기울기 소실", "",
         r"\bvanish", "소실", ("기울기 사라짐",)),
    Term("exploding_gradient", "exploding gradient (blow-up)", "기울기 폭발", "",
         r"\bblow(s|n)? (\w+ )?up\b|\bblow-up\b|\bexplod", "폭발", ("폭주",)),
    Term("long_term_dependency", "long-range dependency", "장기 의존성", "",
         r"\blong-range\b|\blong-term depend", "장기 의존성", ("장기 종속", "장거리 의존")),
    Term("probe", "probe sequence", "관찰용 시퀀스", "",
         r"\bprobe\b", "관찰용", ("검사용",)),
    Term("saturation", "saturation", "포화", "",
         r"\bsaturat", "포화", ("눌러 담",)),
    Term("squash", "squash (into a range)", "압축", "",
         r"\bsquash", "압축", ("눌러 담", "눌러 주")),
    Term("mse", "MSE (mean squared error)", "MSE", "",
         r"\bMSE\b", "MSE", ("평균 제곱 오차",)),
    Term("spectral_radius", "spectral radius", "스펙트럼 반경", "ρ(W_hh)",
         r"\bspectral radi", "스펙트럼 반경", ("스펙트럼 반지름",)),
    Term("generate", "generate (text)", "생성", "",
         None, None, ("받아 적",)),
    Term("range", "range 0..1", "0~1", "",
         None, None, (r"\d\.\.\d", r"−1\.\.")),
)  # fmt: skip
