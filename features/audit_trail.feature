Feature: The audit trail
  Every change is recorded, nothing can be changed unnoticed, and anyone can
  verify the trail (21 CFR 11.10(a), 11.10(c), 11.10(e); EU GMP Annex 11 §9).

  Background:
    Given a fresh GxP installation

  @req:11.10e @req:annex11.9
  Scenario: Changes are recorded with who, what and why
    When "admin" deactivates "op2" with reason "left the company"
    Then the audit trail records "user.deactivate" for user "op2" with reason "left the company"
    And the audit trail verifies

  @req:11.10c
  Scenario: The database refuses to rewrite history
    When someone tries to change an audit entry with SQL
    Then the database refuses the change
    And the audit trail verifies

  @req:11.10a @req:11.10c
  Scenario: An entry edited behind the system's back is found
    Given a signed checkpoint of the audit trail
    When someone edits audit entry 5 directly in the database
    Then verification reports "hash_mismatch" at entry 5

  @req:11.10a @req:11.10c
  Scenario: A cut-off tail is found with the signed checkpoint
    Given a signed checkpoint of the audit trail
    When someone deletes the last 3 audit entries
    Then verification reports "truncated" at the first deleted entry
