"""The `llm` planner: any OpenAI-compatible chat endpoint writes the round plan.

The endpoint comes from the environment (TREX_LLM_BASE_URL, TREX_LLM_MODEL, TREX_LLM_API_KEY; the key is never
logged or stored). The model gets the task, the memory context, the parent's runs and the JSON schema of a
`RoundPlan`; its answer is validated against that same model. An invalid answer (not JSON, or a plan that breaks
a bound) is sent back with the validation error, at most 3 times in all. A plan the server refused (a repeated
run, a budget) comes back through `PlanningState.rejections` and is shown to the model on the next call. Every
response's token usage is counted (`tokens_used`, and `tokens_since_report` for the driver, which records it
against the tree's budget), failed attempts included. The API key is redacted from every error message.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from pydantic import ValidationError

from trex_mcp.agents.heuristic import PlannerError
from trex_mcp.agents.state import PlanningState
from trex_mcp.plans import RoundPlan
from trex_mcp.tools.resources import RESEARCHER_GUIDE

MAX_ATTEMPTS = 3


def _extract_json(text: str) -> str:
    """The JSON object in a reply, tolerating a ```json fence around it."""
    fenced = re.search(r"```(?:json)?\s*(\{.*\})\s*```", text, re.DOTALL)
    if fenced:
        return fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start:end + 1] if start != -1 and end > start else text


def _errors(exc: ValidationError | ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'plan'}: {e['msg']}" for e in exc.errors()[:8])
    return str(exc)


class LLMPlanner:
    """Plans rounds with a chat model behind an OpenAI-compatible API."""

    name = "llm"

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None, seed: int = 0,
                 timeout_s: float = 120.0, temperature: float = 0.2) -> None:
        from openai import OpenAI

        self.model = model
        self.seed = seed
        self.temperature = temperature
        self._secret = api_key or ""
        self.client = OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=2)
        self.tokens_used = 0
        self.tokens_since_report = 0

    @classmethod
    def from_env(cls, *, seed: int = 0) -> LLMPlanner:
        """Build from TREX_LLM_BASE_URL, TREX_LLM_MODEL and TREX_LLM_API_KEY. Raises PlannerError if unset."""
        base_url = os.environ.get("TREX_LLM_BASE_URL")
        model = os.environ.get("TREX_LLM_MODEL")
        if not base_url or not model:
            raise PlannerError("the llm planner needs TREX_LLM_BASE_URL and TREX_LLM_MODEL in the environment",
                               field="planner", hint="or use --planner heuristic")
        return cls(base_url=base_url, model=model, api_key=os.environ.get("TREX_LLM_API_KEY"), seed=seed)

    def messages(self, state: PlanningState) -> list[dict[str, str]]:
        """The conversation that asks for one plan."""
        schema = json.dumps(RoundPlan.model_json_schema(), separators=(",", ":"))
        runs = [{"label": r.label, "recipe": r.recipe, "config": r.config, "state": r.state, "score": r.score,
                 "failure": r.failure} for r in state.parent_runs]
        brief = {k: state.task.get(k) for k in ("name", "description", "base_model", "input_field", "target_field",
                                                 "prompt_template", "higher_is_better")}
        brief["metric"] = state.task.get("evaluation", {}).get("metric")
        brief["train_sources"] = [{"name": s.get("name"), "description": s.get("description")}
                                  for s in state.task.get("data", {}).get("train", [])]
        system = (f"{RESEARCHER_GUIDE}\n\nAnswer with ONE JSON object that validates against this JSON schema "
                  f"(a RoundPlan), and nothing else:\n{schema}")
        user = (f"Task: {json.dumps(brief)}\n\nExpanding node #{state.parent.get('number')} "
                f"(id {state.parent.get('node_id')}). Its runs: {json.dumps(runs, default=str)[:6000]}\n\n"
                f"Memory context:\n{state.context_text}\n\nPropose at most {state.runs_per_round} runs; each recipe "
                f"may use at most {state.max_samples} samples. Runs already made in this tree must not be repeated.")
        if state.rejections:
            refused = "\n".join(f"- {r[:600]}" for r in state.rejections[-3:])
            user += f"\n\nThe server refused earlier plans for this node; do not repeat these mistakes:\n{refused}"
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def plan(self, state: PlanningState) -> RoundPlan:
        """Ask the model for a plan; re-ask with the validation error at most MAX_ATTEMPTS times in all.

        Raises PlannerError when the endpoint fails or no valid plan came back.
        """
        from openai import OpenAIError

        messages = self.messages(state)
        last_error = ""
        for _attempt in range(MAX_ATTEMPTS):
            try:
                reply = self.client.chat.completions.create(model=self.model, messages=messages,
                                                            temperature=self.temperature, seed=self.seed,
                                                            response_format={"type": "json_object"})
            except OpenAIError as exc:
                # `from None`: the chained exception would carry the request (and its Authorization header).
                raise PlannerError(f"LLM endpoint failed: {type(exc).__name__}: {self._redact(str(exc))[:300]}",
                                   hint="check TREX_LLM_BASE_URL, TREX_LLM_MODEL and TREX_LLM_API_KEY") from None
            if reply.usage is not None:
                self.tokens_used += reply.usage.total_tokens
                self.tokens_since_report += reply.usage.total_tokens
            text = (reply.choices[0].message.content or "") if reply.choices else ""
            try:
                plan = RoundPlan.model_validate_json(_extract_json(text))
                if len(plan.runs) > state.runs_per_round:
                    raise ValueError(f"runs: at most {state.runs_per_round} runs per round, got {len(plan.runs)}")
                return plan
            except (ValidationError, ValueError) as exc:
                last_error = _errors(exc)
                messages = [*messages, {"role": "assistant", "content": text[:8000]},
                            {"role": "user", "content": f"That plan is invalid: {last_error}. Answer again with one "
                             "corrected JSON object only."}]
        raise PlannerError(f"the LLM gave no valid plan in {MAX_ATTEMPTS} attempts; last error: "
                           f"{self._redact(last_error)[:500]}")

    def _redact(self, text: str) -> str:
        """`text` without the API key (an endpoint may echo it back in an error body)."""
        return text.replace(self._secret, "***") if len(self._secret) >= 4 else text

    def describe(self) -> dict[str, Any]:
        return {"planner": self.name, "model": self.model, "tokens_used": self.tokens_used}
