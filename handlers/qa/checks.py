"""Content checks that need retrieval: each fact's alternate questions should find that fact.

``chinadesk content check`` calls :func:`check_alternate_questions` and reports what it finds as warnings:
an alternate question that leads to another topic is almost always a question written for the wrong
fact (or a topic whose names and text do not say what the question asks); one that finds the right topic
but leads with another of its facts is summarised per topic, since two facts of a card often answer
the same question.
"""

from __future__ import annotations

from content.loader import Library
from handlers.qa.index import QAIndex


def check_alternate_questions(library: Library, index: QAIndex | None = None) -> list[str]:
    """Warnings about facts whose alternate questions do not retrieve them (see the module docstring)."""
    index = index or QAIndex.build(library)
    warnings: list[str] = []
    for topic in library.topics.values():
        pack = library.topic_pack[topic.id]
        asked = other_fact = 0
        for section, fact in topic.all_facts():
            for question in fact.questions:
                asked += 1
                match = index.match(question)
                if not match.docs or match.docs[0].topic.id != topic.id:
                    found = match.docs[0].topic.id if match.docs else "nothing"
                    warnings.append(f"{pack}/{topic.id}: {section}: alternate question {question!r} finds {found}, "
                                    f"not this topic")
                elif all(d.fact is not fact for d in match.docs):
                    other_fact += 1
        if other_fact:
            warnings.append(f"{pack}/{topic.id}: {other_fact} of {asked} alternate questions lead with another fact "
                            "of the topic (check that each question fits its own fact)")
    return warnings
