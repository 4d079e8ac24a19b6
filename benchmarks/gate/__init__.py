"""The regression gate: references, the judgement of a run against one, and its statistics."""
