from tests.harness import Harness


async def test_render_dog_over_cat(l1: Harness) -> None:
    info = (await l1.http.get("/")).json()
    assert {"identity", "dog"} <= {e["name"] for e in info["effects"]}
    response = await l1.http.post(
        "/runs", json={"recipe": "dog", "inputs": ["cat"], "output_name": "my-output"}
    )
    assert response.status_code == 202, response.text
    run = await l1.finished_run(response.json()["run_id"])
    assert run["status"] == "completed", run
    dog_hash = next(
        a for a in (await l1.http.get("/assets")).json()["items"] if a["name"] == "dog"
    )["content_hash"]
    assert run["output_hash"] == dog_hash
