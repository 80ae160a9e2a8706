"""Erlang C (M/M/c): how many servers (cores, workers) keep queueing delay within a target.

Offered load A = arrival rate x handling time (Erlangs). P(wait) is Erlang C, computed from the Erlang B
recursion (stable for hundreds of servers, no factorials). Service level is the share of requests that
wait at most the target time: 1 - P(wait) * exp(-(c - A) * target / handling time). Source: A. K. Erlang
(1917); the formulas as in Gans, Koole & Mandelbaum, "Telephone call centers", 2003.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

_MAX_SERVERS = 100_000


class ErlangResult(BaseModel):
    servers: int
    offered_load: float
    p_wait: float
    service_level: float
    occupancy: float
    average_wait_seconds: float


def erlang_b(servers: int, offered_load: float) -> float:
    blocking = 1.0
    for count in range(1, servers + 1):
        blocking = offered_load * blocking / (count + offered_load * blocking)
    return blocking


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits; 1.0 when the servers cannot keep up at all."""
    if servers <= offered_load:
        return 1.0
    blocking = erlang_b(servers, offered_load)
    return servers * blocking / (servers - offered_load * (1.0 - blocking))


def evaluate(servers: int, arrival_rate: float, handling_time: float, target_wait: float) -> ErlangResult:
    load = arrival_rate * handling_time
    p_wait = erlang_c(servers, load)
    if servers <= load:
        return ErlangResult(
            servers=servers,
            offered_load=load,
            p_wait=1.0,
            service_level=0.0,
            occupancy=1.0,
            average_wait_seconds=math.inf,
        )
    level = 1.0 - p_wait * math.exp(-(servers - load) * target_wait / handling_time)
    return ErlangResult(
        servers=servers,
        offered_load=load,
        p_wait=p_wait,
        service_level=level,
        occupancy=load / servers,
        average_wait_seconds=p_wait * handling_time / (servers - load),
    )


def servers_for(
    arrival_rate: float, handling_time: float, target_wait: float, service_level: float = 0.8
) -> ErlangResult:
    """Fewest servers whose service level (share answered within target_wait) reaches the goal."""
    if arrival_rate < 0 or handling_time <= 0 or target_wait < 0 or not 0 < service_level < 1:
        raise ValueError("need arrival_rate >= 0, handling_time > 0, target_wait >= 0, 0 < service_level < 1")
    if arrival_rate == 0:
        return evaluate(1, 0.0, handling_time, target_wait)
    load = arrival_rate * handling_time
    servers = max(1, math.floor(load) + 1)
    while servers < _MAX_SERVERS:
        result = evaluate(servers, arrival_rate, handling_time, target_wait)
        if result.service_level >= service_level:
            return result
        servers += 1
    raise ValueError(f"offered load {load:g} Erlangs needs more than {_MAX_SERVERS} servers")
